// checks.mjs — what the viewer must do, as reusable checks: the same ones run against the
// daemon directly and behind nginx. Each takes a page from harness.openPage().
//
// Interface: every export is an async check that throws (node:assert) on failure and
// returns figures worth printing.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { scaled, sleep, waitFor } from "./harness.mjs";

const figure = (camera) => `figure[data-camera="${camera}"]`;

export async function frames(page, camera) {
  const value = await page.getAttribute(figure(camera), "data-frames");
  return Number(value || 0);
}

export async function stats(page, camera) {
  return page.evaluate((name) => {
    const entry = window.pyimagestream.views.get(name);
    return entry ? entry.stream.stats() : null;
  }, camera);
}

export async function statusText(page, camera) {
  const status = page.locator(`${figure(camera)} .status`);
  return (await status.isVisible()) ? (await status.textContent()).trim() : "";
}

export async function waitFrames(page, camera, count, ms = 15_000) {
  const start = await frames(page, camera);
  await waitFor(`${count} more frames of ${camera}`, async () =>
    (await frames(page, camera)) >= start + count ? true : `${await frames(page, camera)} frames`,
  ms);
}

export async function setOverlay(page, on) {
  const pressed = (await page.getAttribute("#info", "aria-pressed")) === "true";
  if (pressed !== on) await page.click("#info");
}

export async function readOverlay(page, camera) {
  const fields = {};
  for (const dd of await page.locator(`${figure(camera)} .overlay dd`).all()) {
    fields[await dd.getAttribute("data-field")] = (await dd.textContent()).trim();
  }
  return fields;
}

/** Page loaded, frames arrive, nothing went to the console as an error. */
export async function loadsCleanly(page, camera) {
  await waitFor(`${camera} live`, async () =>
    (await page.getAttribute(figure(camera), "data-state")) === "live",
  );
  await waitFrames(page, camera, 10);
  assert.deepEqual(page.errors, [], "console errors while loading");
}

/** The overlay's fps is above `min` with the test pattern. */
export async function fpsAbove(page, camera, min) {
  await setOverlay(page, true);
  await sleep(scaled(2500)); // the rate is measured over 2 s
  const fps = Number((await readOverlay(page, camera)).fps);
  assert.ok(fps > min, `fps shown ${fps}, expected > ${min}`);
  return { fps };
}

/** Two screenshots of the picture, half a second apart, differ. */
export async function pictureChanges(page, camera) {
  const canvas = page.locator(`${figure(camera)} canvas`);
  const a = await canvas.screenshot();
  await sleep(500);
  const b = await canvas.screenshot();
  assert.ok(a.length > 2000, "the first screenshot is blank");
  assert.notDeepEqual(a, b, "the picture did not change in 0.5 s");
  return { pngBytes: [a.length, b.length] };
}

/** Every overlay value is there and agrees with the camera and with the README's figures
 * (README, "Browser client": 640x360 at 20 fps on loopback shows the camera's 20 fps, frames
 * under ARRIVAL_MS old on arrival). Read SAMPLES times, REFRESH_MS apart (the overlay's own
 * refresh); medians checked. The overlay's age is the shown frame's age when the overlay
 * refreshes: its age on arrival plus up to one frame interval. A slow machine
 * (PYIMAGESTREAM_TIMEOUT_SCALE) may show fewer frames and older ones, never more frames
 * than the camera makes. */
export async function overlaySane(page, daemon, camera) {
  const SAMPLES = 12;
  const REFRESH_MS = 250;
  const ARRIVAL_MS = 20;
  await setOverlay(page, true);
  await sleep(scaled(2500)); // the rates are measured over 2 s
  const cam = await daemon.camera(camera);
  const snapshot = await fetch(`${daemon.url}snapshot/${camera}.jpg`);
  const jpegBytes = (await snapshot.arrayBuffer()).byteLength;
  const samples = [];
  const arrivals = [];
  for (let i = 0; i < SAMPLES; i += 1) {
    if (i > 0) await sleep(REFRESH_MS);
    samples.push(await readOverlay(page, camera));
    // The age on arrival (capture to receive) of the frame on screen.
    arrivals.push(await page.evaluate((name) => window.pyimagestream.views.get(name).stream.shown.age, camera));
  }
  for (const s of samples) assert.match(s.age, /^\d+ ms$/, `age "${s.age}"`);
  const fps = median(samples.map((s) => Number(s.fps)));
  const age = median(samples.map((s) => Number.parseFloat(s.age)));
  const arrival = median(arrivals);
  // kB/s over fps is the mean frame message: the camera's JPEG (one snapshot's size; the
  // pattern's frames differ by a few hundred bytes) plus protocol 2's metadata (~100 bytes).
  const frameBytes = median(samples.map((s) => (Number(s.rate) * 1000) / Number(s.fps)));
  const figures = {
    fps, ageMs: age, arrivalMs: Math.round(arrival), frameBytes: Math.round(frameBytes), jpegBytes,
    ages: samples.map((s) => Number.parseFloat(s.age)), arrivals: arrivals.map(Math.round),
    window: samples.at(-1).window,
  };
  const shown = JSON.stringify(figures);
  const interval = 1000 / cam.fps;
  assert.ok(fps >= (cam.fps * 0.9) / scaled(1) && fps <= cam.fps * 1.1, `fps, camera ${cam.fps}: ${shown}`);
  assert.ok(arrival >= 0 && arrival <= scaled(ARRIVAL_MS), `age on arrival over ${ARRIVAL_MS} ms: ${shown}`);
  assert.ok(age >= 0 && age <= scaled(ARRIVAL_MS) + interval, `age shown over ${ARRIVAL_MS} + ${interval} ms: ${shown}`);
  assert.ok(Math.abs(frameBytes - jpegBytes) <= 0.05 * jpegBytes, `kB/s / fps, a ${jpegBytes}-byte JPEG: ${shown}`);
  const o = samples.at(-1);
  assert.equal(o.size, `${cam.width}×${cam.height}`);
  const window = o.window.match(/^(\d+) \(rtt (\d+) ms\)$/);
  assert.ok(window, `window "${o.window}"`);
  assert.ok(Number(window[1]) >= 1 && Number(window[1]) <= 8, `window ${o.window}`);
  assert.equal(o.state, "live");
  return figures;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The grid shows every camera; a click opens one; Escape and the back button return.
 * The first two cameras must be live. */
export async function gridAndSingle(page, base, cameras) {
  await page.goto(base);
  await waitFor("a tile per camera", async () =>
    (await page.locator("main.grid a.tile").count()) === cameras.length,
  );
  for (const camera of cameras.slice(0, 2)) await waitFrames(page, camera, 3);
  assert.equal((await page.textContent("#heading")).trim(), "All cameras");
  const [first, second] = cameras;
  // Pointer: click the second tile.
  await page.click(`a.tile[href="#camera=${second}"]`);
  await waitFor("single view", () => page.locator("main.single").count());
  assert.equal(new URL(page.url()).hash, `#camera=${second}`);
  assert.equal((await page.textContent("#heading")).trim(), second);
  assert.equal(await page.locator("main figure").count(), 1);
  await waitFrames(page, second, 3);
  // Keyboard: Escape goes back to the grid, Enter on a focused tile opens it.
  await page.keyboard.press("Escape");
  await waitFor("grid again", () => page.locator("main.grid").count());
  await page.focus(`a.tile[href="#camera=${first}"]`);
  await page.keyboard.press("Enter");
  await waitFor("single view by keyboard", () => page.locator("main.single").count());
  await waitFrames(page, first, 3);
  // The back button.
  assert.ok(await page.isVisible("#back"), "back button hidden in single view");
  await page.click("#back");
  await waitFor("grid by the back button", () => page.locator("main.grid").count());
  // A bookmark opens the camera directly.
  await page.goto(`${base}#camera=${second}`);
  await waitFor("single view from the address", () => page.locator("main.single").count());
  await waitFrames(page, second, 3);
  assert.deepEqual(page.errors, [], "console errors");
}

/** Pause: the camera goes to sleep after its stop_delay, the page says so; resume wakes it. */
export async function sleepAndWake(page, daemon, camera) {
  await waitFrames(page, camera, 3);
  await page.evaluate((name) => {
    const el = document.querySelector(`figure[data-camera="${name}"]`);
    window.__states = [el.dataset.state];
    new MutationObserver(() => {
      if (window.__states.at(-1) !== el.dataset.state) window.__states.push(el.dataset.state);
    }).observe(el, { attributes: true, attributeFilter: ["data-state"] });
  }, camera);
  await page.click("#pause");
  assert.equal(await page.getAttribute("#pause", "aria-pressed"), "true");
  await waitFor("status Paused", async () => /^Paused/.test(await statusText(page, camera)));
  await waitFor("no viewer at the server", async () => (await daemon.camera(camera)).viewers === 0);
  await waitFor("camera sleeping at the server", async () =>
    (await daemon.camera(camera)).state === "sleeping",
  );
  await waitFor("page says sleeping", async () =>
    /sleeping/i.test(await statusText(page, camera)),
  );
  assert.equal(await page.locator(`${figure(camera)} .badge`).textContent(), "paused");
  const before = await frames(page, camera);
  await page.click("#pause");
  assert.equal(await page.getAttribute("#pause", "aria-pressed"), "false");
  await waitFor("live again", async () =>
    (await page.getAttribute(figure(camera), "data-state")) === "live",
  );
  await waitFor("frames again", async () => (await frames(page, camera)) > before + 3);
  const states = await page.evaluate(() => window.__states);
  assert.ok(states.indexOf("sleeping") > 0, `states seen: ${states}`);
  assert.ok(states.lastIndexOf("live") > states.indexOf("sleeping"), `states seen: ${states}`);
  assert.equal(await statusText(page, camera), "");
  return { states: states.join(" -> ") };
}

// Headless Chromium has no way to hide a tab (no window to minimise or switch away from):
// the page's visibility is set the way the browser would and visibilitychange is fired. What
// is checked — no requests go out, the server stops counting the viewer — is real.
async function setHidden(page, hidden) {
  await page.evaluate((h) => {
    Object.defineProperty(document, "visibilityState", {
      configurable: true,
      get: () => (h ? "hidden" : "visible"),
    });
    Object.defineProperty(document, "hidden", { configurable: true, get: () => h });
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);
}

/** While the tab is hidden the page sends no request and the server sends no frame. */
export async function hiddenPauses(page, daemon, camera) {
  await waitFrames(page, camera, 3);
  await setHidden(page, true);
  await waitFor("status says hidden", async () => /hidden/.test(await statusText(page, camera)));
  const sentAt = await page.evaluate(() => performance.now());
  await sleep(500); // frames already on the way may still land
  const server0 = await daemon.camera(camera);
  const frames0 = await frames(page, camera);
  await sleep(scaled(3000));
  const server1 = await daemon.camera(camera);
  const frames1 = await frames(page, camera);
  const sent = await page.evaluate(
    (t) => window.__sent.filter((m) => m.at >= t).map((m) => m.data),
    sentAt,
  );
  assert.equal(server1.viewers, 0, "the server still counts the hidden tab as a viewer");
  assert.equal(server1.frames_sent, server0.frames_sent, "the server sent frames while hidden");
  assert.equal(frames1, frames0, "frames were shown while hidden");
  assert.ok(!sent.some((m) => m.includes('"next"')), `sent while hidden: ${sent}`);
  assert.ok(sent.length <= 1 && (sent.length === 0 || sent[0].includes("pause")), `${sent}`);
  await setHidden(page, false);
  await waitFrames(page, camera, 5);
  const after = await page.evaluate(
    (t) => window.__sent.filter((m) => m.at >= t).map((m) => m.data),
    sentAt,
  );
  assert.ok(after.some((m) => m.includes('"resume"')), "no resume sent");
  return { hiddenFor: "3 s", framesSentWhileHidden: server1.frames_sent - server0.frames_sent };
}

/** Download gives the current frame as a JPEG with a timestamped name; no object URL leaks. */
export async function downloadFrame(page, camera) {
  await waitFrames(page, camera, 3);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
  const name = download.suggestedFilename();
  assert.match(name, new RegExp(`^${camera}-\\d{4}-\\d\\d-\\d\\dT\\d\\d-\\d\\d-\\d\\d\\.\\d{3}Z\\.jpg$`));
  const file = await download.path();
  const bytes = readFileSync(file);
  assert.ok(bytes[0] === 0xff && bytes[1] === 0xd8, "not a JPEG");
  assert.ok(bytes[bytes.length - 2] === 0xff && bytes[bytes.length - 1] === 0xd9, "no JPEG EOI");
  await waitFor("object URL revoked", () =>
    page.evaluate(() => window.__urls.created === window.__urls.revoked),
  );
  return { name, bytes: bytes.length };
}

/** Controls have names and touch sizes; keys work; the picture has a label. */
export async function accessible(page, camera) {
  for (const button of await page.locator("header button:visible, #tools button:visible").all()) {
    const name = (await button.getAttribute("aria-label")) || (await button.textContent()).trim();
    assert.ok(name.length > 0, "a button without a name");
    const box = await button.boundingBox();
    assert.ok(box.width >= 44 && box.height >= 44, `button "${name}" is ${box.width}x${box.height}`);
  }
  const label = await page.getAttribute(`${figure(camera)} canvas`, "aria-label");
  assert.match(label, new RegExp(camera));
  assert.equal(await page.getAttribute(`${figure(camera)} canvas`, "role"), "img");
  assert.equal(await page.getAttribute(`${figure(camera)} .status`, "role"), "status");
  // Keyboard: I toggles the overlay, Space and K pause and resume, F goes fullscreen.
  await page.evaluate(() => document.activeElement?.blur());
  const info = await page.getAttribute("#info", "aria-pressed");
  await page.keyboard.press("i");
  assert.notEqual(await page.getAttribute("#info", "aria-pressed"), info);
  await page.keyboard.press("i");
  await page.keyboard.press(" ");
  assert.equal(await page.getAttribute("#pause", "aria-pressed"), "true");
  await page.keyboard.press("k");
  assert.equal(await page.getAttribute("#pause", "aria-pressed"), "false");
  await page.keyboard.press("f");
  await waitFor("fullscreen", () => page.evaluate(() => document.fullscreenElement !== null));
  await waitFor("the fullscreen button pressed", async () =>
    (await page.getAttribute("#fullscreen", "aria-pressed")) === "true",
  );
  await page.keyboard.press("f");
  await waitFor("fullscreen left", () => page.evaluate(() => document.fullscreenElement === null));
  await waitFrames(page, camera, 3);
}

/** The page scrolls neither way, and every control is on screen, at this viewport; saves a
 * screenshot. */
export async function layoutFits(page, file) {
  const sizes = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    scrollHeight: document.documentElement.scrollHeight,
    innerWidth: window.innerWidth,
    innerHeight: window.innerHeight,
  }));
  assert.ok(sizes.scrollWidth <= sizes.innerWidth, `horizontal scroll: ${JSON.stringify(sizes)}`);
  assert.ok(sizes.scrollHeight <= sizes.innerHeight, `vertical scroll: ${JSON.stringify(sizes)}`);
  for (const button of await page.locator("header button:visible, #tools button:visible").all()) {
    const box = await button.boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= sizes.innerWidth, "a button off screen");
    assert.ok(box.y >= 0 && box.y + box.height <= sizes.innerHeight, "a button off screen");
  }
  await page.screenshot({ path: file, fullPage: true });
  return sizes;
}

/** Daemon stopped: the page says it is reconnecting; daemon back: frames resume, no reload. */
export async function reconnects(page, daemon, camera, { restart = daemon } = {}) {
  await waitFrames(page, camera, 3);
  await page.evaluate(() => {
    window.__sameDocument = true;
  });
  await daemon.stop();
  await waitFor("page says reconnecting", async () =>
    /reconnecting/i.test(await statusText(page, camera)),
  );
  const text = await statusText(page, camera);
  await sleep(1500); // let a retry or two fail
  await restart.start();
  await waitFor("connection open again", async () =>
    (await page.getAttribute(figure(camera), "data-connection")) === "open",
  20_000);
  await waitFrames(page, camera, 10);
  assert.equal(await page.evaluate(() => window.__sameDocument), true, "the page reloaded");
  assert.equal(await statusText(page, camera), "");
  return { said: text };
}

/** A camera whose device is missing is shown as offline with the server's reason. */
export async function offlineShown(page, daemon, camera) {
  await waitFor(`${camera} offline`, async () =>
    (await page.getAttribute(figure(camera), "data-state")) === "offline",
  );
  const { reason } = await daemon.camera(camera);
  assert.ok(reason.length > 0, "the server gave no reason");
  await waitFor("the reason on the page", async () =>
    (await statusText(page, camera)) === `Camera offline: ${reason}` || (await statusText(page, camera)),
  );
  assert.equal(await page.locator(`${figure(camera)} .badge`).textContent(), "offline");
  assert.match(await page.getAttribute(`${figure(camera)} canvas`, "aria-label"), /offline/);
  return { said: await statusText(page, camera) };
}
