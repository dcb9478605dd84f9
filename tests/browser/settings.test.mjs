// Camera settings in real Chromium against the real daemon: an admin moves the test pattern's
// brightness slider with the keyboard, the server confirms the value and the next frames on
// the canvas are brighter; the switch and reset work; saved values come back after a restart;
// in the grid of several cameras the panel acts on the camera picked (in its list, or by
// focusing a tile), not the first; a viewer sees no panel. No CSP violation anywhere.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, test } from "node:test";
import * as check from "./lib/checks.mjs";
import { accounts, daemonAndBrowser, openPage, sleep, waitFor } from "./lib/harness.mjs";
import { PIXELS_IN_PAGE } from "./lib/pixels.mjs";

// Two cameras: the panel's camera in the grid is tested on door; the rest runs on fish
// alone on screen.
const CAMERAS = { fish: { width: 320, height: 240, fps: 15 }, door: { width: 320, height: 240, fps: 15 } };
const PASSWORD = "fish food 42";
const users = accounts({ anna: "admin", bob: "viewer" }, { password: PASSWORD, cameras: Object.keys(CAMERAS) });
const env = daemonAndBrowser(CAMERAS, { extraYaml: users.yaml, headers: { Authorization: users.authorization } });

/** A page logged in as `name`, showing fish (or, with hash "", the grid of both). */
async function loggedIn(name, hash = "#camera=fish") {
  const page = await openPage(env.browser, `${env.daemon.url}login.html${hash}`, { viewport: { width: 1024, height: 700 } });
  page.violations = [];
  page.on("console", (msg) => {
    if (msg.text().includes("Content Security Policy")) page.violations.push(msg.text());
  });
  await page.fill("#name", name);
  await page.fill("#password", PASSWORD);
  await page.click("#submit");
  await waitFor("the viewer", () => !page.url().includes("login.html"));
  page.errors.length = 0; // the login page's own "not logged in yet" (401) is expected
  await check.waitFrames(page, "fish", 5);
  return page;
}

/** The mean brightness of the picture as the page shows it (a screenshot of the canvas). */
async function shownBrightness(page) {
  const png = (await page.locator('figure[data-camera="fish"] canvas').screenshot()).toString("base64");
  const box = await page.locator('figure[data-camera="fish"] canvas').boundingBox();
  const points = [];
  for (let i = 1; i < 12; i += 1) {
    for (let j = 1; j < 12; j += 1) points.push([(box.width * i) / 12, (box.height * j) / 12]);
  }
  const rgb = await page.evaluate(`(${PIXELS_IN_PAGE})(${JSON.stringify(png)}, ${JSON.stringify(points)})`);
  return rgb.reduce((sum, [r, g, b]) => sum + 0.299 * r + 0.587 * g + 0.114 * b, 0) / rgb.length;
}

/** The brightness of a frame that arrived after this call. */
async function nextBrightness(page) {
  await check.waitFrames(page, "fish", 3);
  return shownBrightness(page);
}

after(() => {
  rmSync(users.dir, { recursive: true, force: true });
});

test("an admin moves the brightness slider: confirmed by the server, the next frames are brighter", async () => {
  const page = await loggedIn("anna");
  const before = await nextBrightness(page);
  await page.click("#settings-toggle");
  assert.equal(await page.getAttribute("#settings-toggle", "aria-expanded"), "true");
  const slider = page.locator("#control-brightness");
  await slider.waitFor();
  // Labelled and keyboard-operable: the label names it, End moves it to its maximum.
  assert.equal(await page.textContent('label[for="control-brightness"]'), "Brightness");
  assert.deepEqual(
    [await slider.getAttribute("min"), await slider.getAttribute("max"), await slider.inputValue()],
    ["0", "255", "128"],
  );
  await slider.focus();
  await page.keyboard.press("End");
  await waitFor("the server's value", async () =>
    (await page.getAttribute("#settings output[for=control-brightness]", "data-value")) === "255",
  );
  const brighter = await nextBrightness(page);
  assert.ok(brighter > before + 40, `brightness ${before.toFixed(1)} -> ${brighter.toFixed(1)}`);
  assert.equal((await env.daemon.camera("fish")).format.controls.brightness.value, 255);
  // Darker with the arrow keys (one request at a time, the last value wins).
  for (let i = 0; i < 40; i += 1) await page.keyboard.press("PageDown");
  const shown = await slider.inputValue();
  await waitFor("the server's value after PageDown", async () =>
    (await page.getAttribute("#settings output[for=control-brightness]", "data-value")) === shown,
  );
  assert.ok(Number(shown) < 128, `slider at ${shown}`);
  assert.ok((await nextBrightness(page)) < before - 20, "darker after PageDown");
  // The switch, then reset.
  await page.click("#control-horizontal_flip");
  await waitFor("flip confirmed", async () =>
    (await page.getAttribute("#settings output[for=control-horizontal_flip]", "data-value")) === "1",
  );
  await page.click("#settings-reset");
  await waitFor("reset confirmed", async () =>
    (await page.locator("#control-brightness").inputValue()) === "128" &&
    (await page.getAttribute("#settings output[for=control-brightness]", "data-value")) === "128",
  );
  assert.equal(await page.locator("#control-horizontal_flip").isChecked(), false);
  const reset = await nextBrightness(page);
  assert.ok(Math.abs(reset - before) < 10, `back to ${reset.toFixed(1)} (was ${before.toFixed(1)})`);
  // Escape closes the panel and gives the focus back to its button.
  await page.focus("#control-brightness");
  await page.keyboard.press("Escape");
  assert.equal(await page.locator("#settings").isVisible(), false);
  assert.equal(await page.evaluate(() => document.activeElement.id), "settings-toggle");
  assert.deepEqual([...page.errors, ...page.violations], []);
  await page.closeAll();
});

test("saved settings come back after a restart of the daemon", async () => {
  const page = await loggedIn("anna");
  await page.click("#settings-toggle");
  await page.locator("#control-brightness").waitFor();
  await page.$eval("#control-brightness", (slider) => {
    slider.value = "60";
    slider.dispatchEvent(new Event("input", { bubbles: true }));
  });
  await waitFor("60 confirmed", async () =>
    (await page.getAttribute("#settings output[for=control-brightness]", "data-value")) === "60",
  );
  await page.click("#settings-save");
  await waitFor("saved", async () => /Saved/.test(await page.textContent("#settings-status")));
  await page.closeAll();
  await env.daemon.stop();
  await env.daemon.start();
  const again = await loggedIn("anna");
  await again.click("#settings-toggle");
  await waitFor("the saved value", async () => (await again.locator("#control-brightness").inputValue()) === "60");
  await again.click("#settings-reset");
  await waitFor("reset", async () => /defaults/.test(await again.textContent("#settings-status")));
  await again.click("#settings-save");
  await waitFor("saved", async () => /Saved/.test(await again.textContent("#settings-status")));
  await again.closeAll();
});

/** What the server holds for a camera's controls, asked from the page (the admin's session). */
async function changed(page, camera) {
  return page.evaluate(async (name) => {
    const response = await fetch(`api/camera/${name}/controls`, { headers: { "X-PyImageStream": "1" } });
    return (await response.json()).changed;
  }, camera);
}

test("in the grid, the settings panel acts on the camera picked, not the first", async () => {
  const page = await loggedIn("anna", "");
  await waitFor("two tiles", async () => (await page.locator("main.grid a.tile").count()) === 2);
  await check.waitFrames(page, "door", 3);
  await page.click("#settings-toggle");
  // Nothing picked yet: the first camera, with the list to pick another.
  await waitFor("fish's settings", async () => (await page.textContent("#settings-heading")) === "fish: settings");
  assert.deepEqual(await page.locator("#settings-camera option").allTextContents(), ["fish", "door"]);
  assert.equal(await page.textContent('label[for="settings-camera"]'), "Camera");
  await page.selectOption("#settings-camera", "door");
  await waitFor("door's settings", async () => (await page.textContent("#settings-heading")) === "door: settings");
  assert.equal(await page.evaluate(() => document.activeElement.id), "settings-camera");
  assert.equal(await page.locator('a.tile.configuring[href="#camera=door"]').count(), 1, "door's tile is not marked");
  await page.focus("#control-brightness");
  await page.keyboard.press("End");
  await waitFor("door's value", async () =>
    (await page.getAttribute("#settings output[for=control-brightness]", "data-value")) === "255",
  );
  assert.deepEqual(await changed(page, "door"), { brightness: 255 });
  assert.deepEqual(await changed(page, "fish"), {}, "the change went to the first camera");
  // Focusing a tile (Tab) picks its camera, and the open panel follows.
  await page.focus('a.tile[href="#camera=fish"]');
  await waitFor("fish's settings again", async () => (await page.textContent("#settings-heading")) === "fish: settings");
  await page.focus('a.tile[href="#camera=door"]');
  await waitFor("door's settings again", async () => (await page.textContent("#settings-heading")) === "door: settings");
  assert.equal(await page.locator("#control-brightness").inputValue(), "255");
  await page.click("#settings-reset");
  await waitFor("door reset", async () => /defaults/.test(await page.textContent("#settings-status")));
  assert.deepEqual(await changed(page, "door"), {});
  // Closed, no tile is marked; one camera on screen is the one set, without a list.
  await page.click("#settings-toggle");
  assert.equal(await page.locator("a.tile.configuring").count(), 0);
  await page.click('a.tile[href="#camera=door"]');
  await page.click("#settings-toggle");
  await waitFor("door on screen, without the list", async () =>
    page.url().endsWith("#camera=door") &&
    (await page.textContent("#settings-heading")) === "door: settings" &&
    (await page.locator("#settings-camera").count()) === 0,
  );
  assert.deepEqual([...page.errors, ...page.violations], []);
  await page.closeAll();
});

test("a viewer sees no settings panel, and the API refuses them", async () => {
  const page = await loggedIn("bob");
  await sleep(1000); // the admin's button would be there by now
  assert.equal(await page.locator("#settings-toggle").count(), 0);
  assert.equal(await page.locator("#settings").count(), 0);
  const status = await page.evaluate(async () => {
    const response = await fetch("api/camera/fish/controls", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-PyImageStream": "1" },
      body: JSON.stringify({ brightness: 250 }),
    });
    return response.status;
  });
  assert.equal(status, 403);
  await page.closeAll();
});
