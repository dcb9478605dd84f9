// The core cases in the two other engines: Firefox ESR (Gecko, over WebDriver BiDi) and
// WebKitGTK (WebKit, Safari's engine, under Xvfb). The page loads without errors, shows
// frames at the camera's rate, the picture changes, zoom is what is shown, the layout fits
// phone and desktop sizes (screenshots as artifacts), and frames resume after the daemon
// restarts. The JS heap cannot be read in either engine from these drivers (Chromium's test
// measures it); a run of 300 frames checks no object URL is left and no error is raised instead.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { hookedWebRoot, launchEngine } from "./lib/engines.mjs";
import { artifactPath, scaled, sleep, startDaemon, waitFor } from "./lib/harness.mjs";
import { PIXELS_IN_PAGE, barOf, expectedBars } from "./lib/pixels.mjs";

const CAMERA = { width: 1280, height: 720, fps: 15, stop_delay: 1 };
const SIZES = [
  [390, 844],
  [844, 390],
  [1280, 800],
];

// In the page: what the figure of the one camera says.
function figureState() {
  const el = document.querySelector("main figure");
  const status = el && el.querySelector(".status");
  return {
    frames: Number(el ? el.dataset.frames : 0),
    seq: el ? el.dataset.seq : undefined,
    state: el ? el.dataset.state : undefined,
    connection: el ? el.dataset.connection : undefined,
    status: status && !status.hidden ? status.textContent : "",
    errors: window.__errors || ["the test hooks did not load"],
    urls: window.__urls,
  };
}

function layout() {
  const rect = (sel) => {
    const el = document.querySelector(sel);
    if (!el) return null;
    const r = el.getBoundingClientRect();
    return { x: r.x, y: r.y, width: r.width, height: r.height };
  };
  const d = document.documentElement;
  return {
    scrollWidth: d.scrollWidth,
    scrollHeight: d.scrollHeight,
    innerWidth: window.innerWidth,
    innerHeight: window.innerHeight,
    bar: rect("header"),
    tools: rect("#tools"),
    picture: rect("main.single .picture"),
    canvas: rect("main.single canvas"),
  };
}

for (const engineName of ["firefox", "webkit"]) {
  describe(engineName, () => {
    let daemon;
    let engine;
    let page;
    let web;
    const state = () => page.evaluate(figureState);
    const waitFrames = async (count, ms = 15_000) => {
      const start = (await state()).frames;
      await waitFor(`${count} more frames`, async () => {
        const now = (await state()).frames;
        return now >= start + count ? true : `${now - start} frames`;
      }, ms);
    };

    before(async () => {
      web = hookedWebRoot();
      daemon = await startDaemon({ front: CAMERA }, { webRoot: web.dir });
      engine = await launchEngine(engineName);
      page = await engine.open(`${daemon.url}#camera=front`);
    });

    after(async () => {
      await page?.close().catch(() => {});
      await engine?.close();
      await daemon?.close();
      web?.remove();
    });

    test(`${engineName}: the page loads and shows frames with no errors`, async (t) => {
      await waitFor("live", async () => (await state()).state === "live");
      await waitFrames(10);
      assert.deepEqual((await state()).errors, []);
      t.diagnostic(`${engine.name} ${engine.version}`);
    });

    test(`${engineName}: frames come at the camera's rate`, async (t) => {
      const a = await state();
      const startedAt = Date.now();
      await sleep(4000);
      const b = await state();
      const fps = ((b.frames - a.frames) * 1000) / (Date.now() - startedAt);
      t.diagnostic(JSON.stringify({ fps, camera: CAMERA.fps }));
      assert.ok(fps > CAMERA.fps * 0.8, `${fps.toFixed(1)} fps shown, camera ${CAMERA.fps}`);
    });

    test(`${engineName}: the picture changes`, async () => {
      const a = await state();
      const shotA = await page.screenshot();
      await sleep(500);
      const b = await state();
      const shotB = await page.screenshot();
      assert.notEqual(a.seq, b.seq, "no new frame in 0.5 s");
      assert.ok(shotA.length > 2000, "blank screenshot");
      assert.notDeepEqual(shotA, shotB, "the screenshots are the same");
    });

    test(`${engineName}: no overflow at 390x844, 844x390 and 1280x800; portrait puts the controls at the bottom`, async (t) => {
      for (const [width, height] of SIZES) {
        await page.setSize(width, height);
        await waitFor(`viewport ${width}x${height}`, async () => {
          const l = await page.evaluate(layout);
          return l.innerWidth === width && l.innerHeight === height ? true : `${l.innerWidth}x${l.innerHeight}`;
        });
        await sleep(300); // a frame or two at the new size
        const l = await page.evaluate(layout);
        writeFileSync(artifactPath(`${engineName}-${width}x${height}.png`), await page.screenshot());
        t.diagnostic(JSON.stringify({ width, height, ...l }));
        assert.ok(l.scrollWidth <= width, `horizontal overflow ${l.scrollWidth} > ${width}`);
        assert.ok(l.scrollHeight <= height, `vertical overflow ${l.scrollHeight} > ${height}`);
        if (height > width) {
          assert.equal(l.picture.width, width, "picture not at full width");
          assert.ok(Math.abs(l.picture.y - (l.bar.y + l.bar.height)) <= 1, "picture not under the bar");
          assert.ok(Math.abs(l.tools.y + l.tools.height - height) <= 1, "tools not at the bottom");
        } else if (height < 500) {
          assert.equal(l.picture.height, height, "landscape picture not at full height");
        }
      }
      await page.setSize(1280, 800);
    });

    test(`${engineName}: zoom is what is shown, and survives new frames`, async () => {
      // What the screen shows must match where the canvas is. A screenshot can be taken
      // before the engine has painted the last layout change (WebKit, after a resize or a
      // zoom step: seen once in CI), so look again until the two agree, within a bound; a
      // broken zoom never agrees and still fails.
      const row = async () => {
        const until = Date.now() + scaled(5000);
        for (;;) {
          const l = await page.evaluate(layout);
          const y = l.canvas.y + l.canvas.height * 0.55;
          const xs = [];
          for (let x = l.picture.x + 4; x < l.picture.x + l.picture.width - 4; x += 8) xs.push(x);
          const png = (await page.screenshot()).toString("base64");
          const pixels = await page.evaluate(PIXELS_IN_PAGE, png, xs.map((x) => [x, y]));
          const expected = expectedBars(l.canvas, xs);
          const judged = xs.map((x, i) => ({ seen: barOf(pixels[i]), expected: expected[i] })).filter((p) => p.expected !== null);
          const wrong = judged.filter((p) => p.seen !== p.expected);
          if (wrong.length <= judged.length * 0.05) return judged.map((p) => p.seen).join("");
          if (Date.now() > until) {
            assert.fail(`${wrong.length} of ${judged.length} wrong: ${JSON.stringify(wrong.slice(0, 4))}`);
          }
          await sleep(100);
        }
      };
      const plain = await row();
      await page.evaluate(() => {
        for (let i = 0; i < 4; i += 1) window.pyimagestream.zoomKey("+");
      });
      const zoomed = await row();
      assert.notEqual(zoomed, plain, "zoom changed nothing on screen");
      await waitFrames(30);
      assert.equal(await row(), zoomed, "zoom lost with new frames");
      await page.evaluate(() => window.pyimagestream.zoomKey("0"));
      assert.equal(await row(), plain, "reset");
    });

    test(`${engineName}: after the daemon stops the page says reconnecting, and frames resume after it restarts`, async () => {
      await page.evaluate(() => {
        window.__sameDocument = true;
      });
      await daemon.stop();
      await waitFor("reconnecting", async () => /reconnecting/i.test((await state()).status));
      await sleep(1500);
      await daemon.start();
      await waitFor("open again", async () => (await state()).connection === "open", 20_000);
      await waitFrames(10);
      assert.equal(await page.evaluate(() => window.__sameDocument), true, "the page reloaded");
      assert.deepEqual((await state()).errors, []);
    });

    test(`${engineName}: 300 frames later no object URL is left and no error was raised`, async (t) => {
      await waitFrames(300, 60_000);
      const s = await state();
      t.diagnostic(JSON.stringify({ frames: s.frames, urls: s.urls }));
      assert.equal(s.urls.created, s.urls.revoked, "object URLs leaked");
      assert.deepEqual(s.errors, []);
    });
  });
}
