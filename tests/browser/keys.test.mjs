// The viewer's number and download keys in Chromium against the real daemon (README,
// "Controls"): 1-9 open the camera of that place in the grid, from the grid or from another
// camera, and a key with no camera does nothing; D downloads the very frame on screen.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import * as check from "./lib/checks.mjs";
import { daemonAndBrowser, openPage, sleep, waitFor } from "./lib/harness.mjs";

// Ten cameras: the tenth has no key. Small and slow, so that the grid of ten costs little.
const NAMES = ["c01", "c02", "c03", "c04", "c05", "c06", "c07", "c08", "c09", "c10"];
const CAMERAS = Object.fromEntries(NAMES.map((n) => [n, { width: 160, height: 120, fps: 5, stop_delay: 1 }]));

const env = daemonAndBrowser(CAMERAS);

async function shown(page) {
  return page.evaluate(() => ({
    hash: window.location.hash,
    mode: window.pyimagestream.mode,
    cameras: [...window.pyimagestream.views.keys()],
  }));
}

async function pressAndSettle(page, key) {
  await page.evaluate(() => document.activeElement?.blur());
  await page.keyboard.press(key);
  await sleep(300); // a hashchange and a new view, if the key does anything
}

test("keys 1-9 open the camera at that place in the grid; other keys and places do nothing", async () => {
  const page = await openPage(env.browser, env.daemon.url, { viewport: { width: 1280, height: 800 } });
  await waitFor("ten tiles", async () => (await page.locator("main.grid a.tile").count()) === NAMES.length);
  const order = await page.locator("main.grid a.tile").evaluateAll((tiles) =>
    tiles.map((a) => decodeURIComponent(a.getAttribute("href").replace("#camera=", ""))),
  );
  assert.deepEqual(order, NAMES, "grid order");
  // From the grid: each key opens its camera (checked one after the other, back to the grid
  // between, so that a key working only from one view is caught).
  for (const key of ["1", "2", "5", "9"]) {
    await pressAndSettle(page, key);
    const name = order[Number(key) - 1];
    await waitFor(`key ${key} opens ${name}`, async () => {
      const s = await shown(page);
      return s.mode === "single" && s.cameras[0] === name && s.hash === `#camera=${name}` ? true : JSON.stringify(s);
    });
    await check.waitFrames(page, name, 2);
    await pressAndSettle(page, "Escape");
    await waitFor("the grid again", async () => (await shown(page)).mode === "grid");
  }
  // From one camera to another, without the grid between.
  await pressAndSettle(page, "3");
  await waitFor("c03", async () => (await shown(page)).cameras[0] === "c03");
  await pressAndSettle(page, "7");
  await waitFor("c07 from c03", async () => {
    const s = await shown(page);
    return s.cameras.length === 1 && s.cameras[0] === "c07" ? true : JSON.stringify(s);
  });
  await check.waitFrames(page, "c07", 2);
  // 0 is the zoom reset and there is no key for the tenth camera; a modifier is the browser's.
  for (const key of ["0", "Control+4", "Alt+4"]) {
    await pressAndSettle(page, key);
    assert.deepEqual((await shown(page)).cameras, ["c07"], `${key} changed the camera`);
  }
  // A key on a focused form field is text, not a command.
  await page.evaluate(() => {
    const input = document.createElement("input");
    input.id = "typing";
    document.body.append(input);
  });
  await page.focus("#typing");
  await page.keyboard.press("2");
  await sleep(300);
  assert.deepEqual((await shown(page)).cameras, ["c07"], "a digit typed in a field opened a camera");
  assert.deepEqual(page.errors, []);
  await page.closeAll();
});

test("D downloads the frame on screen, named by its capture time; in the grid it does nothing", async (t) => {
  const page = await openPage(env.browser, `${env.daemon.url}#camera=c02`);
  await check.waitFrames(page, "c02", 3);
  // Paused, the frame on screen stays put: the download must be that frame, byte for byte.
  await pressAndSettle(page, " ");
  await sleep(500); // a frame already on the way may land
  const onScreen = await page.evaluate(() => {
    const { stream, view } = window.pyimagestream.views.get("c02");
    const last = stream.lastJpeg();
    let binary = "";
    for (const b of last.jpeg) binary += String.fromCharCode(b);
    return { jpeg: btoa(binary), time: last.meta.time, seq: last.meta.seq, drawn: view.element.dataset.seq };
  });
  assert.equal(String(onScreen.seq), onScreen.drawn, "the stream's last frame is not the one drawn");
  const [download] = await Promise.all([page.waitForEvent("download"), pressAndSettle(page, "d")]);
  const bytes = readFileSync(await download.path());
  const sha = (b) => createHash("sha256").update(b).digest("hex");
  assert.equal(sha(bytes), sha(Buffer.from(onScreen.jpeg, "base64")), "not the frame on screen");
  const stamp = new Date(onScreen.time * 1000).toISOString().replace(/:/g, "-");
  assert.equal(download.suggestedFilename(), `c02-${stamp}.jpg`);
  await waitFor("object URL revoked", () => page.evaluate(() => window.__urls.created === window.__urls.revoked));
  t.diagnostic(JSON.stringify({ name: download.suggestedFilename(), bytes: bytes.length }));
  // Shift+D is the same key.
  const [again] = await Promise.all([page.waitForEvent("download"), pressAndSettle(page, "Shift+D")]);
  assert.equal(again.suggestedFilename(), `c02-${stamp}.jpg`);

  // The grid has no single frame to download.
  await pressAndSettle(page, " ");
  await page.evaluate(() => {
    window.location.hash = "";
  });
  await waitFor("the grid", async () => (await shown(page)).mode === "grid");
  let downloads = 0;
  page.on("download", () => {
    downloads += 1;
  });
  await pressAndSettle(page, "d");
  await sleep(700);
  assert.equal(downloads, 0, "D downloaded something from the grid");
  assert.deepEqual(page.errors, []);
  await page.closeAll();
});
