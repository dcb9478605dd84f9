// The viewer on a phone and without the newer APIs, in Chromium: layout at phone and desktop
// sizes, zoom and pan by touch (pinch, pan, double tap), mouse (wheel, drag) and keys,
// fallbacks with APIs removed before the page starts (the manifest: install.test.mjs).
import assert from "node:assert/strict";
import { test } from "node:test";
import * as check from "./lib/checks.mjs";
import { artifactPath, daemonAndBrowser, openPage, startDaemon, waitFor } from "./lib/harness.mjs";
import { PIXELS_IN_PAGE, barOf, expectedBars } from "./lib/pixels.mjs";

const CAMERAS = { front: { width: 1280, height: 720, fps: 15, stop_delay: 1 } };

const env = daemonAndBrowser(CAMERAS);

const phone = { viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true };

async function box(page, selector) {
  return page.locator(selector).boundingBox();
}

/** Colour bars along a screen row inside the picture: [{x, seen, expected}]. */
async function barsRow(page) {
  const clip = await box(page, "main.single .picture");
  const rect = await page.evaluate(() => {
    const r = document.querySelector("main.single canvas").getBoundingClientRect();
    return { x: r.x, y: r.y, width: r.width, height: r.height };
  });
  // Frame row 55% down: in the bars (top two thirds), below the moving box.
  const y = rect.y + rect.height * 0.55;
  assert.ok(y > clip.y + 2 && y < clip.y + clip.height - 2, `row ${y} not on screen (${JSON.stringify(rect)})`);
  const xs = [];
  for (let x = clip.x + 4; x < clip.x + clip.width - 4; x += 6) xs.push(x);
  const png = (await page.screenshot()).toString("base64");
  const pixels = await page.evaluate(
    ([fn, data, points]) => (0, eval)(fn)(data, points),
    [PIXELS_IN_PAGE, png, xs.map((x) => [x, y])],
  );
  const expected = expectedBars(rect, xs);
  return xs.map((x, i) => ({ x, seen: barOf(pixels[i]), expected: expected[i] }));
}

/** The screen shows the bars where the canvas's on-screen box says: the zoom is what is shown. */
function assertShown(row, what) {
  const judged = row.filter((p) => p.expected !== null);
  const wrong = judged.filter((p) => p.seen !== p.expected);
  assert.ok(judged.length > 20, `${what}: too few samples`);
  assert.ok(wrong.length <= judged.length * 0.05, `${what}: ${wrong.length} of ${judged.length} wrong: ${JSON.stringify(wrong.slice(0, 5))}`);
  return row.map((p) => p.seen).join("");
}

async function zoomState(page) {
  return page.evaluate(() => {
    const { zoom, canvas } = [...window.pyimagestream.views.values()][0].view;
    return { scale: zoom.scale, view: zoom.view(), canvasWidth: canvas.width };
  });
}

async function touch(cdp, type, points) {
  await cdp.send("Input.dispatchTouchEvent", {
    type,
    touchPoints: points.map(([x, y], id) => ({ x, y, id })),
  });
}

async function pinch(cdp, cx, cy, from, to, steps = 10) {
  await touch(cdp, "touchStart", [[cx - from / 2, cy], [cx + from / 2, cy]]);
  for (let i = 1; i <= steps; i += 1) {
    const d = from + ((to - from) * i) / steps;
    await touch(cdp, "touchMove", [[cx - d / 2, cy], [cx + d / 2, cy]]);
  }
  await touch(cdp, "touchEnd", []);
}

async function drag(cdp, x, y, dx, dy, steps = 8) {
  await touch(cdp, "touchStart", [[x, y]]);
  for (let i = 1; i <= steps; i += 1) {
    await touch(cdp, "touchMove", [[x + (dx * i) / steps, y + (dy * i) / steps]]);
  }
  await touch(cdp, "touchEnd", []);
}

test("portrait, landscape and desktop: no overflow, picture and controls where a phone user needs them", async (t) => {
  for (const [width, height] of [
    [390, 844],
    [844, 390],
    [1280, 800],
  ]) {
    const mobile = width < 1000;
    const page = await openPage(env.browser, `${env.daemon.url}#camera=front`, {
      viewport: { width, height },
      hasTouch: mobile,
      isMobile: mobile,
    });
    await check.waitFrames(page, "front", 5);
    const fit = await check.layoutFits(page, artifactPath(`chromium-${width}x${height}.png`));
    const picture = await box(page, "main.single .picture");
    const tools = await box(page, "#tools");
    if (height > width) {
      // Portrait: picture at the top at full width, state and time under it, tools at the bottom.
      const bar = await box(page, "header");
      assert.equal(picture.x, 0);
      assert.equal(picture.width, width);
      assert.ok(Math.abs(picture.y - (bar.y + bar.height)) <= 1, "picture not right under the bar");
      assert.ok(Math.abs(picture.height - (width * 720) / 1280) <= 1, `picture height ${picture.height}`);
      const caption = await box(page, "main.single figcaption");
      assert.ok(caption.y >= picture.y + picture.height - 1, "caption not under the picture");
      assert.match(await page.textContent("main.single figcaption .badge"), /live/);
      assert.match(await page.textContent("main.single figcaption .when"), /^\d\d:\d\d:\d\d$/);
      assert.ok(Math.abs(tools.y + tools.height - height) <= 1, "tools not at the bottom");
    } else if (mobile) {
      // Landscape phone: the picture takes the whole height, the controls a column beside it.
      assert.equal(picture.height, height);
      assert.ok(tools.x >= picture.x + picture.width - 1, "tools not beside the picture");
    } else {
      assert.ok(picture.height > height * 0.8, `picture height ${picture.height}`);
    }
    t.diagnostic(JSON.stringify({ width, height, fit, picture }));
    await page.closeAll();
  }
});

test("pinch zooms into the full-resolution frame, a drag pans, zoom survives 100 frames, reset returns", async (t) => {
  const page = await openPage(env.browser, `${env.daemon.url}#camera=front`, phone);
  const cdp = await page.context().newCDPSession(page);
  await check.waitFrames(page, "front", 3);
  const plain = assertShown(await barsRow(page), "unzoomed");
  assert.equal(await page.isVisible("#zoom-reset"), false, "reset shown while not zoomed");

  const picture = await box(page, "main.single .picture");
  const cx = picture.x + picture.width / 2;
  const cy = picture.y + picture.height / 2;
  await pinch(cdp, cx, cy, 60, 240);
  const zoomed = await zoomState(page);
  assert.ok(zoomed.scale > 3, `pinch gave scale ${zoomed.scale}`);
  assert.equal(zoomed.canvasWidth, 1280, "the canvas is not the full-resolution frame");
  const inRow = assertShown(await barsRow(page), "pinched");
  assert.notEqual(inRow, plain, "the zoomed picture looks like the unzoomed one");
  assert.ok(await page.isVisible("#zoom-reset"), "no reset button while zoomed");

  await drag(cdp, cx - 100, cy, 200, 0);
  const panned = await zoomState(page);
  assert.ok(panned.view.x < zoomed.view.x - 10, `drag did not pan: ${zoomed.view.x} -> ${panned.view.x}`);
  const panRow = assertShown(await barsRow(page), "panned");
  assert.notEqual(panRow, inRow, "the pan changed nothing on screen");

  await check.waitFrames(page, "front", 100, 30_000);
  const later = await zoomState(page);
  assert.equal(later.scale, panned.scale, "zoom changed over 100 frames");
  assert.deepEqual(later.view, panned.view, "pan changed over 100 frames");
  assert.equal(assertShown(await barsRow(page), "after 100 frames"), panRow);

  await page.tap("#zoom-reset");
  assert.equal((await zoomState(page)).scale, 1);
  assert.equal(assertShown(await barsRow(page), "reset"), plain);
  assert.equal(await page.isVisible("#zoom-reset"), false, "reset still shown");

  // Double tap zooms in at that point, another one back out.
  for (const expected of [2.5, 1]) {
    for (let i = 0; i < 2; i += 1) {
      await touch(cdp, "touchStart", [[cx, cy]]);
      await touch(cdp, "touchEnd", []);
    }
    assert.equal((await zoomState(page)).scale, expected, "double tap");
    await new Promise((resolve) => setTimeout(resolve, 500)); // not a triple tap
  }
  assert.deepEqual(page.errors, [], "console errors");
  t.diagnostic(JSON.stringify({ pinchScale: zoomed.scale, plain, inRow, panRow }));
  await page.closeAll();
});

test("wheel and drag with a mouse, and the + - 0 keys, zoom and pan", async () => {
  const page = await openPage(env.browser, `${env.daemon.url}#camera=front`);
  await check.waitFrames(page, "front", 3);
  const plain = assertShown(await barsRow(page), "unzoomed");
  const picture = await box(page, "main.single .picture");
  const cx = picture.x + picture.width / 2;
  const cy = picture.y + picture.height / 2;
  await page.mouse.move(cx, cy);
  await page.mouse.wheel(0, -500);
  await waitFor("wheel zoom", async () => (await zoomState(page)).scale > 2);
  assert.notEqual(assertShown(await barsRow(page), "wheel"), plain, "the wheel changed nothing on screen");
  const before = await zoomState(page);
  await page.mouse.down();
  await page.mouse.move(cx + 150, cy, { steps: 5 });
  await page.mouse.up();
  assert.ok((await zoomState(page)).view.x < before.view.x - 10, "mouse drag did not pan");
  await page.keyboard.press("0");
  assert.equal((await zoomState(page)).scale, 1);
  await page.keyboard.press("+");
  assert.equal((await zoomState(page)).scale, 1.25);
  await page.keyboard.press("+");
  await page.keyboard.press("-");
  assert.equal((await zoomState(page)).scale, 1.25);
  assert.ok(await page.isVisible("#zoom-reset"));
  await page.click("#zoom-reset");
  assert.equal((await zoomState(page)).scale, 1);
  await page.mouse.dblclick(cx, cy);
  assert.equal((await zoomState(page)).scale, 2.5, "double click");
  await page.mouse.dblclick(cx, cy);
  assert.equal((await zoomState(page)).scale, 1, "second double click");
  assert.deepEqual(page.errors, [], "console errors");
  await page.closeAll();
});

test("without the Fullscreen API the button offers a full window, with no error", async () => {
  const page = await openPage(env.browser, "about:blank", phone);
  await page.addInitScript(() => {
    delete Element.prototype.requestFullscreen;
    delete Element.prototype.webkitRequestFullscreen;
    Object.defineProperty(Document.prototype, "fullscreenEnabled", { get: () => false });
  });
  await page.goto(`${env.daemon.url}#camera=front`);
  await check.waitFrames(page, "front", 3);
  assert.equal((await page.textContent("#fullscreen .label")).trim(), "Full window");
  await page.tap("#fullscreen");
  await waitFor("full-window layout", () => page.evaluate(() => document.body.classList.contains("full-window")));
  // (The full-window layout hides the notice bar: ask the element, not the screen.)
  assert.equal(await page.evaluate(() => document.getElementById("notice").hidden), true, "a notice was shown");
  const picture = await box(page, "main.single .picture");
  assert.deepEqual([picture.x, picture.y, picture.width, picture.height], [0, 0, 390, 844]);
  assert.equal((await page.textContent("#fullscreen .label")).trim(), "Exit full window");
  await page.screenshot({ path: artifactPath("chromium-full-window-390x844.png") });
  await page.tap("#fullscreen");
  await waitFor("normal layout", () => page.evaluate(() => !document.body.classList.contains("full-window")));
  await check.waitFrames(page, "front", 3);
  assert.deepEqual(page.errors, [], "console errors");
  await page.closeAll();
});

test("without createImageBitmap frames decode through img.decode() and every object URL is revoked", async (t) => {
  const page = await openPage(env.browser, "about:blank");
  await page.addInitScript(() => {
    delete window.createImageBitmap;
  });
  await page.goto(`${env.daemon.url}#camera=front`);
  await check.loadsCleanly(page, "front");
  await check.waitFrames(page, "front", 30);
  await check.pictureChanges(page, "front");
  const urls = await page.evaluate(() => window.__urls);
  // At most the frame being decoded right now holds a URL.
  assert.ok(urls.created > 30, `only ${urls.created} object URLs: not the img path`);
  assert.ok(urls.created - urls.revoked <= 1, `object URLs leak: ${JSON.stringify(urls)}`);
  assert.deepEqual(page.errors, [], "console errors");
  t.diagnostic(JSON.stringify(urls));
  await page.closeAll();
});

test("a browser that can decode no JPEG gets a plain message and opens no connection", async () => {
  const page = await openPage(env.browser, "about:blank");
  await page.addInitScript(() => {
    delete window.createImageBitmap;
    delete HTMLImageElement.prototype.decode;
    window.__sockets = [];
    const Native = WebSocket;
    window.WebSocket = function (...args) {
      window.__sockets.push(`${args[0]} ${new Error().stack}`);
      return new Native(...args);
    };
  });
  await page.goto(`${env.daemon.url}#camera=front`);
  await waitFor("the message", () => page.isVisible("main .unsupported"));
  assert.match(await page.textContent("main .unsupported"), /cannot show the pictures/);
  // The previous test's viewer may take a moment to leave.
  await waitFor("no viewer at the server", async () => (await env.daemon.camera("front")).viewers === 0);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.deepEqual(await page.evaluate(() => window.__sockets), [], "a WebSocket was opened");
  assert.equal((await env.daemon.camera("front")).viewers, 0);
  assert.deepEqual(page.errors, [], "console errors");
  await page.closeAll();
});

// The server's choice for a maximum width (README, protocol 2 "size"): the largest M/8 scale.
function scaledWidth(width, maxWidth) {
  if (maxWidth <= 0 || maxWidth >= width) return width;
  let eighths = 8;
  while (eighths > 1 && Math.ceil((width * eighths) / 8) > maxWidth) eighths -= 1;
  return Math.ceil((width * eighths) / 8);
}

test("grid tiles get frames as wide as the tile, the data saver 640, one camera alone its full size", async (t) => {
  const two = await startDaemon({
    left: { width: 1280, height: 720, fps: 15, stop_delay: 1 },
    right: { width: 1280, height: 720, fps: 15, stop_delay: 1 },
  });
  try {
    const page = await openPage(env.browser, two.url, { viewport: { width: 390, height: 844 } });
    const decoded = (name) =>
      page.evaluate((n) => {
        const { view, stream } = window.pyimagestream.views.get(n);
        return { canvas: view.canvas.width, tile: view.element.clientWidth, sent: stream.maxWidth };
      }, name);
    await check.waitFrames(page, "left", 3);
    await waitFor("tile-sized frames", async () => {
      const d = await decoded("left");
      return d.canvas === scaledWidth(1280, d.tile) ? true : JSON.stringify(d);
    });
    const tile = await decoded("left");
    assert.ok(tile.canvas < 1280, `tile frames ${tile.canvas} wide`);
    await page.goto(`${two.url}#camera=left`);
    await check.waitFrames(page, "left", 3);
    assert.equal((await decoded("left")).canvas, 1280, "one camera alone is not full size");
    await page.click("#saver");
    await waitFor("data saver frames", async () => ((await decoded("left")).canvas === 640 ? true : `${(await decoded("left")).canvas}`));
    assert.equal(await page.getAttribute("#saver", "aria-pressed"), "true");
    await page.click("#saver");
    await waitFor("full frames again", async () => (await decoded("left")).canvas === 1280);
    assert.deepEqual(page.errors, [], "console errors");
    t.diagnostic(JSON.stringify({ tile }));
    await page.closeAll();
  } finally {
    await two.close();
  }
});
