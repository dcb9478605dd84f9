// The viewer against the real daemon on 127.0.0.1, in real headless Chromium.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import * as check from "./lib/checks.mjs";
import { artifactPath, launchBrowser, openPage, startDaemon, waitFor } from "./lib/harness.mjs";

const CAMERAS = {
  front: { width: 640, height: 360, fps: 20, stop_delay: 1 },
  back: { width: 320, height: 240, fps: 15, stop_delay: 1 },
  // A V4L2 camera that is not plugged in: the daemon reports it offline with a reason.
  gone: { source: "/dev/video-missing", width: 640, height: 480, fps: 10 },
};
let daemon;
let browser;
let page;

before(async () => {
  daemon = await startDaemon(CAMERAS);
  browser = await launchBrowser();
  page = await openPage(browser, `${daemon.url}#camera=front`);
});

after(async () => {
  await browser?.close();
  await daemon?.close();
});

test("the page loads and shows frames with no console errors", async () => {
  await check.loadsCleanly(page, "front");
});

test("the fps shown is above 10 with the test pattern", async (t) => {
  t.diagnostic(JSON.stringify(await check.fpsAbove(page, "front", 10)));
});

test("the picture changes between two screenshots", async () => {
  await check.pictureChanges(page, "front");
});

test("the overlay's fps, frame age and kB/s agree with the camera; size, window and state shown", async (t) => {
  t.diagnostic(JSON.stringify(await check.overlaySane(page, daemon, "front")));
});

test("the grid shows every camera and a click or Enter opens one", async () => {
  await check.gridAndSingle(page, daemon.url, Object.keys(CAMERAS));
});

test("a camera that is offline is shown so, with the server's reason", async (t) => {
  await page.goto(`${daemon.url}#camera=gone`);
  t.diagnostic(JSON.stringify(await check.offlineShown(page, daemon, "gone")));
});

test("a bookmark of a camera that does not exist says so and does not retry", async () => {
  await page.goto(`${daemon.url}#camera=nosuch`);
  await waitFor("the page says the camera is unknown", async () =>
    /^Cannot show this camera: .*nosuch/.test(await check.statusText(page, "nosuch")) ||
    (await check.statusText(page, "nosuch")),
  );
  assert.equal(await page.getAttribute('figure[data-camera="nosuch"]', "data-connection"), "failed");
});

test("a paused camera is shown sleeping and wakes on resume", async (t) => {
  await page.goto(`${daemon.url}#camera=front`);
  t.diagnostic(JSON.stringify(await check.sleepAndWake(page, daemon, "front")));
});

test("a hidden tab sends no request and receives no frame", async (t) => {
  t.diagnostic(JSON.stringify(await check.hiddenPauses(page, daemon, "front")));
});

test("the current frame downloads as a timestamped JPEG", async (t) => {
  t.diagnostic(JSON.stringify(await check.downloadFrame(page, "front")));
});

test("controls are labelled, touch-sized and keyboard operable", async () => {
  await check.accessible(page, "front");
});

test("the layout fits a 360x740 phone (a tap opens a camera) and a 1920x1080 screen", async (t) => {
  for (const [width, height, phone] of [
    [360, 740, true],
    [1920, 1080, false],
  ]) {
    const p = await openPage(browser, daemon.url, {
      viewport: { width, height },
      hasTouch: phone,
      isMobile: phone,
    });
    await check.setOverlay(p, true);
    await check.waitFrames(p, "front", 5);
    await check.waitFrames(p, "back", 5);
    t.diagnostic(JSON.stringify(await check.layoutFits(p, artifactPath(`grid-${width}x${height}.png`))));
    if (phone) {
      await p.tap('a.tile[href="#camera=front"]');
    } else {
      await p.click('a.tile[href="#camera=front"]');
    }
    await waitFor("single view", () => p.locator("main.single").count());
    await check.waitFrames(p, "front", 5);
    await check.layoutFits(p, artifactPath(`single-${width}x${height}.png`));
    await p.closeAll();
  }
});

test("after the daemon stops the page says reconnecting, and frames resume after it restarts", async (t) => {
  t.diagnostic(JSON.stringify(await check.reconnects(page, daemon, "front")));
});
