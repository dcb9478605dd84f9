// The automatic data saver in Chromium against the real daemon: over a link throttled (CDP
// network emulation) below one full frame a second, the page asks for 640-pixel frames by
// itself, decodes frames of that size, says so on the data saver button and under the
// picture, and stays there while the link stays slow; with the throttle lifted it returns to
// full frames. Pressing the button while it is on by itself keeps full frames.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import * as check from "./lib/checks.mjs";
import { launchBrowser, openPage, scaled, sleep, startDaemon, waitFor } from "./lib/harness.mjs";

const CAMERA = "hd";
const WIDTH = 1280;
const SAVER_WIDTH = 640; // app.js; 1280 x 4/8, so the frames are exactly this wide
const LINK_BYTES_PER_S = 20_000;
let daemon;
let browser;

before(async () => {
  daemon = await startDaemon({ [CAMERA]: { width: WIDTH, height: 720, fps: 15, quality: 85 } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await daemon?.close();
});

async function emulate(cdp, bytesPerSecond) {
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false,
    latency: 0,
    downloadThroughput: bytesPerSecond, // -1: no throttling
    uploadThroughput: bytesPerSecond,
  });
}

/** What the page shows and asks for. */
async function seen(page) {
  return page.evaluate((camera) => {
    const { view, stream } = window.pyimagestream.views.get(camera);
    const saver = document.getElementById("saver");
    return {
      decoded: view.canvas.width,
      asked: stream.maxWidth,
      pressed: saver.getAttribute("aria-pressed"),
      label: saver.querySelector(".label").textContent,
      figure: view.element.dataset.saver,
      caption: view.element.querySelector(".saving").hidden ? "" : view.element.querySelector(".saving").textContent,
      sizes: window.__sent.filter((m) => m.data.includes('"size"')).map((m) => JSON.parse(m.data).max_width),
      frames: stream.frames,
    };
  }, CAMERA);
}

function full(s) {
  return s.decoded === WIDTH && s.asked === 0 && s.pressed === "false" && s.label === "Data saver" && s.caption === "";
}

test("a link below one full frame a second gets 640-pixel frames by itself, and full ones once it is fast", async (t) => {
  const page = await openPage(browser, `${daemon.url}#camera=${CAMERA}`, { viewport: { width: 1280, height: 800 } });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  await check.waitFrames(page, CAMERA, 20);
  await sleep(scaled(6000)); // a fast link for longer than the measuring time: nothing changes
  const fast = await seen(page);
  assert.ok(full(fast), `on a fast link: ${JSON.stringify(fast)}`);
  const fullBytes = (await check.stats(page, CAMERA)).bytesPerSecond / (await check.stats(page, CAMERA)).fps;
  assert.ok(fullBytes > 1.5 * LINK_BYTES_PER_S, `full frames of ${fullBytes} B fit the ${LINK_BYTES_PER_S} B/s link`);

  await emulate(cdp, LINK_BYTES_PER_S);
  const throttledAt = Date.now();
  await waitFor("640-pixel frames decoded", async () => {
    const s = await seen(page);
    return s.decoded === SAVER_WIDTH ? true : JSON.stringify(s);
  }, 40_000, 250);
  const downAfter = (Date.now() - throttledAt) / 1000;
  const down = await seen(page);
  assert.equal(down.asked, SAVER_WIDTH);
  assert.deepEqual(down.sizes, [SAVER_WIDTH], "size messages");
  assert.equal(down.pressed, "true");
  assert.equal(down.label, "Data saver (auto)");
  assert.equal(down.figure, "auto");
  assert.equal(down.caption, "data saver");

  // The link stays slow: the page stays at the small size (no flapping back and forth) and
  // still shows frames.
  await sleep(scaled(15_000));
  const held = await seen(page);
  assert.deepEqual(held.sizes, [SAVER_WIDTH], `size messages while the link stayed slow: ${held.sizes}`);
  assert.equal(held.decoded, SAVER_WIDTH);
  const smallFps = (held.frames - down.frames) / scaled(15);
  assert.ok(held.frames - down.frames >= 10, `${held.frames - down.frames} small frames in 15 s`);

  await emulate(cdp, -1);
  const liftedAt = Date.now();
  await waitFor("full frames again", async () => {
    const s = await seen(page);
    return full(s) ? true : JSON.stringify(s);
  }, 30_000, 250);
  const upAfter = (Date.now() - liftedAt) / 1000;
  assert.deepEqual((await seen(page)).sizes, [SAVER_WIDTH, 0], "size messages");
  t.diagnostic(JSON.stringify({ fullFrameBytes: Math.round(fullBytes), linkBytesPerS: LINK_BYTES_PER_S, downAfterS: downAfter, smallFps: Number(smallFps.toFixed(2)), upAfterS: upAfter }));
  assert.deepEqual(page.errors, []);
  await page.closeAll();
});

test("pressing the data saver while it is on by itself brings full frames over the slow link", async () => {
  const page = await openPage(browser, `${daemon.url}#camera=${CAMERA}`, { viewport: { width: 1280, height: 800 } });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  await check.waitFrames(page, CAMERA, 10);
  await emulate(cdp, LINK_BYTES_PER_S);
  await waitFor("on by itself", async () => ((await seen(page)).label === "Data saver (auto)" ? true : JSON.stringify(await seen(page))), 40_000, 250);
  await page.click("#saver");
  await waitFor("full frames over the slow link", async () => {
    const s = await seen(page);
    return full(s) ? true : JSON.stringify(s);
  }, 30_000, 250);
  await sleep(scaled(10_000)); // longer than the measuring time: it does not come back by itself
  const kept = await seen(page);
  assert.ok(full(kept), JSON.stringify(kept));
  // Pressed again: the user's own data saver, 640 pixels, not "auto".
  await page.click("#saver");
  await waitFor("the user's data saver", async () => {
    const s = await seen(page);
    return s.asked === SAVER_WIDTH && s.pressed === "true" && s.label === "Data saver" ? true : JSON.stringify(s);
  });
  await page.click("#saver"); // and off, for the next page (the setting is remembered)
  await emulate(cdp, -1);
  await page.closeAll();
});
