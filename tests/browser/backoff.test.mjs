// The viewer's reconnect back-off in Chromium against the real daemon (README, "States in
// plain words"): after the daemon stops, the page retries after 0.5, 1, 2, 4, 8 s and then
// every 15 s (each with up to 20% jitter); an `online` event retries at once; once connected
// the back-off starts again from 0.5 s. The times are those of the page's own connection
// attempts, recorded by wrapping the WebSocket constructor before the page starts.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import * as check from "./lib/checks.mjs";
import { launchBrowser, scaled, startDaemon, waitFor } from "./lib/harness.mjs";

const CAMERA = "front";
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000, 15000];
const JITTER = 0.2;
let daemon;
let browser;

before(async () => {
  daemon = await startDaemon({ [CAMERA]: { width: 320, height: 240, fps: 15, stop_delay: 1 } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await daemon?.close();
});

/** A page whose every WebSocket records when it was made, opened and closed. */
async function recordingPage(url) {
  const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
  await context.addInitScript(() => {
    const Native = window.WebSocket;
    window.__attempts = [];
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        const attempt = { madeAt: performance.now(), openedAt: null, closedAt: null };
        window.__attempts.push(attempt);
        this.addEventListener("open", () => (attempt.openedAt = performance.now()));
        this.addEventListener("close", () => (attempt.closedAt = performance.now()));
      }
    };
  });
  const page = await context.newPage();
  await page.goto(url);
  return page;
}

const attempts = (page) => page.evaluate(() => window.__attempts);

/** The waits between one attempt's close and the next attempt, from attempt index `from`. */
function waits(list, from) {
  const out = [];
  for (let i = from; i + 1 < list.length; i += 1) out.push(list[i + 1].madeAt - list[i].closedAt);
  return out;
}

function assertBackoff(measured, expected) {
  // Timers do not fire early; late by a busy machine's scheduling at most.
  const late = scaled(400);
  measured.forEach((ms, i) => {
    const low = expected[i] * (1 - JITTER) - 5;
    const high = expected[i] * (1 + JITTER) + late;
    assert.ok(ms >= low && ms <= high, `wait ${i + 1}: ${Math.round(ms)} ms, expected ${low}..${high} (all: ${measured.map(Math.round)})`);
  });
}

test("retries after 0.5, 1, 2, 4, 8, 15, 15 s; `online` retries at once; the back-off restarts after a connection", async (t) => {
  const page = await recordingPage(`${daemon.url}#camera=${CAMERA}`);
  await check.waitFrames(page, CAMERA, 5);
  const first = (await attempts(page)).length - 1; // the open connection
  await daemon.stop();
  // The close of the open connection, then one failed attempt per back-off step.
  await waitFor(`${BACKOFF_MS.length} failed attempts`, async () => {
    const list = await attempts(page);
    const failed = list.slice(first + 1).filter((a) => a.closedAt !== null).length;
    return failed >= BACKOFF_MS.length ? true : `${failed} so far`;
  }, BACKOFF_MS.reduce((a, b) => a + b) * (1 + JITTER) + 20_000);
  const list = await attempts(page);
  const measured = waits(list, first).slice(0, BACKOFF_MS.length);
  t.diagnostic(JSON.stringify({ waitsMs: measured.map(Math.round) }));
  assert.ok(list.slice(first + 1).every((a) => a.openedAt === null), "an attempt opened with the daemon down");
  assertBackoff(measured, BACKOFF_MS);

  // Now in a 15 s wait: `online` makes an attempt at once (it fails: the daemon is down).
  const before = list.length;
  const onlineAt = await page.evaluate(() => {
    const at = performance.now();
    window.dispatchEvent(new Event("online"));
    return at;
  });
  await waitFor("an attempt after `online`", async () => (await attempts(page)).length > before, 2000);
  const made = (await attempts(page))[before].madeAt - onlineAt;
  t.diagnostic(JSON.stringify({ onlineToAttemptMs: Math.round(made) }));
  assert.ok(made < scaled(100), `attempt ${Math.round(made)} ms after the online event`);

  // With the daemon back, `online` connects well before the 15 s retry would.
  await waitFor("that attempt closed", async () => (await attempts(page))[before].closedAt !== null, 2000);
  await daemon.start();
  const count = (await attempts(page)).length;
  const backAt = await page.evaluate(() => {
    const at = performance.now();
    window.dispatchEvent(new Event("online"));
    return at;
  });
  await waitFor("open again", async () =>
    (await page.getAttribute(`figure[data-camera="${CAMERA}"]`, "data-connection")) === "open",
  5000);
  const reopened = (await attempts(page)).slice(count);
  assert.equal(reopened.length, 1, "more than one attempt after `online`");
  const openMs = reopened[0].openedAt - backAt;
  t.diagnostic(JSON.stringify({ onlineToOpenMs: Math.round(openMs) }));
  assert.ok(openMs < scaled(1500), `open ${Math.round(openMs)} ms after the online event`);
  await check.waitFrames(page, CAMERA, 5);

  // A connection that reached the server resets the back-off: 0.5 s, then 1 s again.
  const restart = (await attempts(page)).length - 1;
  await daemon.stop();
  await waitFor("two failed attempts", async () => {
    const l = await attempts(page);
    return l.slice(restart + 1).filter((a) => a.closedAt !== null).length >= 2;
  }, 10_000);
  const again = waits(await attempts(page), restart).slice(0, 2);
  t.diagnostic(JSON.stringify({ waitsAfterResetMs: again.map(Math.round) }));
  assertBackoff(again, BACKOFF_MS);
  await daemon.start();
  await waitFor("open after the restart", async () =>
    (await page.getAttribute(`figure[data-camera="${CAMERA}"]`, "data-connection")) === "open",
  10_000);
  await page.context().close();
});
