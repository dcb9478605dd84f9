// Memory: the JS heap stays flat while the viewer shows 10,000 frames (a small, fast camera so
// that it takes about a minute), and every object URL made is revoked.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import * as check from "./lib/checks.mjs";
import { launchBrowser, openPage, startDaemon, waitFor } from "./lib/harness.mjs";

const FRAMES = 10_000;
const WARMUP = 1_000;
// Allowed growth from frame 1,000 to frame 10,000: far below one leaked object per frame
// (a leaked 1-2 kB JPEG or an ImageBitmap per frame would be 10-20 MB).
const MAX_GROWTH = 1_000_000;

let daemon;
let browser;
let page;

before(async () => {
  daemon = await startDaemon({ tiny: { width: 160, height: 120, fps: 240, quality: 60 } });
  browser = await launchBrowser();
  page = await openPage(browser, `${daemon.url}#camera=tiny`);
});

after(async () => {
  await browser?.close();
  await daemon?.close();
});

async function heapAfterGc(cdp) {
  // Twice: the first pass may only free what finalizers release for the second.
  await cdp.send("HeapProfiler.collectGarbage");
  await cdp.send("HeapProfiler.collectGarbage");
  return (await cdp.send("Runtime.getHeapUsage")).usedSize;
}

test(`the JS heap stays flat over ${FRAMES} frames`, async (t) => {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("HeapProfiler.enable");
  // The test's own record of sent messages would grow the heap it measures.
  await page.evaluate(() => {
    window.__recordSends = false;
    window.__sent = [];
  });
  await waitFor(`${WARMUP} frames`, async () => (await check.frames(page, "tiny")) >= WARMUP, 60_000, 250);
  const startedAt = Date.now();
  const start = await check.frames(page, "tiny");
  const before = await heapAfterGc(cdp);
  await waitFor(
    `${FRAMES} frames`,
    async () => (await check.frames(page, "tiny")) >= FRAMES || `${await check.frames(page, "tiny")}`,
    240_000,
    500,
  );
  const shown = (await check.frames(page, "tiny")) - start;
  const seconds = (Date.now() - startedAt) / 1000;
  const after = await heapAfterGc(cdp);
  const urls = await page.evaluate(() => window.__urls);
  const figures = {
    heapAtWarmup: before,
    heapAtEnd: after,
    growth: after - before,
    framesMeasured: shown,
    fps: Math.round(shown / seconds),
    objectUrls: urls,
  };
  t.diagnostic(JSON.stringify(figures));
  assert.ok(after - before < MAX_GROWTH, `heap grew by ${after - before} bytes`);
  assert.equal(urls.created, urls.revoked, "object URLs leaked");
  assert.deepEqual(page.errors, [], "console errors");
});
