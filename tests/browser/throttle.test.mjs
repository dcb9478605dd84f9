// The adaptive request window over emulated links: a slow one (2 Mbit/s, 150 ms round trip)
// where frames must not queue, and a fast one with the same round trip where the window must
// carry the camera's full frame rate. Bandwidth: Chromium's network emulation (CDP). Round
// trip: a relay delaying each direction by 75 ms (the emulation does not delay WebSocket
// messages). Last, the relay cuts every connection: a network drop the page recovers from.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import * as check from "./lib/checks.mjs";
import { launchBrowser, openPage, scaled, sleep, startDaemon, waitFor } from "./lib/harness.mjs";
import { startRelay } from "./lib/relay.mjs";

const CAMERA = "hd";
const FPS = 15;
const LINK_BYTES_PER_S = 2_000_000 / 8;
const ONE_WAY_MS = 75;

let daemon;
let relay;
let browser;

before(async () => {
  daemon = await startDaemon({ [CAMERA]: { width: 1280, height: 720, fps: FPS, quality: 85 } });
  relay = await startRelay(daemon.port, ONE_WAY_MS);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await relay?.close();
  await daemon?.close();
});

async function emulate(page, bytesPerSecond) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false,
    latency: 0, // the relay's round trip is the one that applies to WebSocket messages
    downloadThroughput: bytesPerSecond,
    uploadThroughput: bytesPerSecond,
  });
  return cdp;
}

/** What the emulated link really delivers to a WebSocket: three frames requested at once
 * queue on the link, so the third arrives one transfer time after the second. */
async function measureLink(page) {
  return page.evaluate(async (camera) => {
    const rates = [];
    for (let round = 0; round < 2; round += 1) {
      const ws = new WebSocket(new URL(`/websocket/${camera}`, location.href).href.replace(/^http/, "ws"), [
        "pyimagestream.v2",
      ]);
      ws.binaryType = "arraybuffer";
      const arrivals = [];
      await new Promise((resolve, reject) => {
        ws.onerror = reject;
        ws.onmessage = (event) => {
          if (typeof event.data === "string") {
            if (JSON.parse(event.data).type === "hello") {
              for (let i = 0; i < 3; i += 1) ws.send('{"type": "next"}');
            }
            return;
          }
          arrivals.push([performance.now(), event.data.byteLength]);
          if (arrivals.length === 3) resolve();
        };
      });
      ws.close();
      rates.push((arrivals[2][1] * 1000) / (arrivals[2][0] - arrivals[1][0]));
    }
    return rates.reduce((a, b) => a + b) / rates.length;
  }, CAMERA);
}

/** Watch the viewer for `ms`: every frame's age on arrival, and the stats every 200 ms. */
async function watch(page, ms) {
  await page.evaluate((camera) => {
    const { view, stream } = window.pyimagestream.views.get(camera);
    window.__ages = [];
    window.__trace = [];
    const show = view.showFrame.bind(view);
    view.showFrame = (bitmap, meta) => {
      window.__ages.push(stream.shown.age);
      window.__trace.push([Math.round(performance.now()), stream.flow.window, Math.round(stream.flow.queueDelay), Math.round(stream.shown.age), stream.flow.outstanding, meta.seq]);
      show(bitmap, meta);
    };
  }, CAMERA);
  const samples = [];
  const end = Date.now() + ms;
  const startFrames = await page.evaluate((c) => window.pyimagestream.views.get(c).stream.frames, CAMERA);
  const startedAt = Date.now();
  while (Date.now() < end) {
    samples.push(await page.evaluate((c) => window.pyimagestream.views.get(c).stream.stats(), CAMERA));
    await sleep(200);
  }
  const frames =
    (await page.evaluate((c) => window.pyimagestream.views.get(c).stream.frames, CAMERA)) - startFrames;
  const ages = await page.evaluate(() => window.__ages);
  if (process.env.TRACE) console.log(JSON.stringify(await page.evaluate(() => window.__trace)));
  const seconds = (Date.now() - startedAt) / 1000;
  const bytes = samples.reduce((sum, s) => sum + s.bytesPerSecond, 0) / samples.length;
  const windows = samples.map((s) => s.window);
  return { frames, seconds, fps: frames / seconds, ages, bytesPerSecond: bytes, windows, last: samples.at(-1) };
}

function quantile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

test("on a 2 Mbit/s link with 150 ms round trip frames do not queue and the rate adapts", async (t) => {
  const probe = await openPage(browser, `${relay.url}api/state`);
  await emulate(probe, LINK_BYTES_PER_S);
  const linkRate = await measureLink(probe);
  await probe.closeAll();

  const page = await openPage(browser, `${relay.url}#camera=${CAMERA}`, {
    viewport: { width: 1280, height: 720 },
  });
  await emulate(page, LINK_BYTES_PER_S);
  await sleep(scaled(8000)); // the window settles
  const seen = await watch(page, scaled(15_000));
  await page.closeAll();

  const frameBytes = seen.bytesPerSecond / seen.fps;
  const transferMs = (frameBytes * 1000) / linkRate;
  const medianAge = quantile(seen.ages, 0.5);
  const figures = {
    linkKBps: Math.round(linkRate / 1000),
    frameKB: Math.round(frameBytes / 1000),
    transferMs: Math.round(transferMs),
    fps: Number(seen.fps.toFixed(2)),
    kBps: Math.round(seen.bytesPerSecond / 1000),
    medianAgeMs: Math.round(medianAge),
    p90AgeMs: Math.round(quantile(seen.ages, 0.9)),
    windows: [...new Set(seen.windows)].join(","),
    rttMs: Math.round(seen.last.rtt),
  };
  t.diagnostic(JSON.stringify(figures));
  assert.ok(seen.frames >= 10, `only ${seen.frames} frames in ${seen.seconds} s`);
  assert.ok(medianAge < 2 * transferMs, `median frame age ${medianAge} ms >= 2 x ${transferMs} ms`);
  // The rate follows the link, not the camera: fewer frames than captured, and the link used.
  assert.ok(seen.fps < FPS * 0.6, `fps ${seen.fps} on a link that cannot carry ${FPS}`);
  assert.ok(seen.bytesPerSecond > 0.4 * linkRate, `${seen.bytesPerSecond} B/s of ${linkRate}`);
});

test("on a fast link with 150 ms round trip the window carries the camera's full rate", async (t) => {
  const page = await openPage(browser, `${relay.url}#camera=${CAMERA}`, {
    viewport: { width: 1280, height: 720 },
  });
  await sleep(scaled(5000));
  const seen = await watch(page, scaled(6000));
  await page.closeAll();
  const figures = {
    fps: Number(seen.fps.toFixed(2)),
    kBps: Math.round(seen.bytesPerSecond / 1000),
    medianAgeMs: Math.round(quantile(seen.ages, 0.5)),
    windows: [...new Set(seen.windows)].join(","),
    rttMs: Math.round(seen.last.rtt),
  };
  t.diagnostic(JSON.stringify(figures));
  // One request per round trip would give 1000 / 150 = 6.7 fps.
  assert.ok(seen.fps > FPS * 0.85, `fps ${seen.fps}, camera ${FPS}`);
  assert.ok(Math.min(...seen.windows) >= 2, `window ${seen.windows}`);
});

test("after a network drop the page says reconnecting and frames resume", async (t) => {
  const page = await openPage(browser, `${relay.url}#camera=${CAMERA}`);
  await check.waitFrames(page, CAMERA, 10);
  relay.dropConnections();
  await waitFor("page says reconnecting", async () =>
    /reconnecting/i.test(await check.statusText(page, CAMERA)),
  );
  t.diagnostic(await check.statusText(page, CAMERA));
  await waitFor("connection open again", async () =>
    (await page.getAttribute(`figure[data-camera="${CAMERA}"]`, "data-connection")) === "open",
  10_000);
  await check.waitFrames(page, CAMERA, 10);
  await page.closeAll();
});
