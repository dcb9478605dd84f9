// Installability in Chromium against the real daemon: the viewer's web app manifest parses
// without errors, Chromium finds nothing that stops installing it (Page.getInstallabilityErrors,
// in a profile that is not incognito, where that check means something), it says standalone
// display and the theme colour, and its icons load in the page at the sizes it states. The
// login page and a share link's page link the same manifest and theme colour.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";
import * as check from "./lib/checks.mjs";
import { CHROMIUM, CHROMIUM_ARGS, oneAccount, startDaemon, waitFor } from "./lib/harness.mjs";

let daemon;
let guarded; // with an account: its login page stays (without, it goes on to the viewer)
let accounts;
let context;
let profile;

before(async () => {
  daemon = await startDaemon({ front: { width: 640, height: 360, fps: 10, stop_delay: 1 } });
  accounts = oneAccount();
  guarded = await startDaemon(
    { front: { width: 640, height: 360, fps: 10, stop_delay: 1 } },
    { extraYaml: accounts.yaml, headers: { Authorization: accounts.authorization } },
  );
  // A persistent profile: Playwright's default contexts are incognito, and Chromium never
  // installs from incognito (its only installability error there is "in-incognito").
  profile = mkdtempSync(path.join(os.tmpdir(), "pyimagestream-profile-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 390, height: 844 },
  });
});

after(async () => {
  await context?.close();
  await daemon?.close();
  await guarded?.close();
  if (accounts) rmSync(accounts.dir, { recursive: true, force: true });
  if (profile) rmSync(profile, { recursive: true, force: true });
});

async function manifestOf(page) {
  const cdp = await context.newCDPSession(page);
  const manifest = await cdp.send("Page.getAppManifest");
  return { cdp, manifest };
}

test("the viewer is installable: manifest without errors, no installability errors, standalone, theme colour, icons", async (t) => {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (err) => errors.push(err.message));
  await page.goto(`${daemon.url}#camera=front`);
  await check.waitFrames(page, "front", 3);
  const { cdp, manifest } = await manifestOf(page);
  assert.equal(manifest.url, `${daemon.url}manifest.webmanifest`);
  assert.deepEqual(manifest.errors, [], "manifest errors");
  // Chromium fetches and checks the manifest and its icons by itself: wait until it has.
  const installability = await waitFor("Chromium's installability check", async () => {
    const { installabilityErrors } = await cdp.send("Page.getInstallabilityErrors");
    return installabilityErrors.length === 0 ? { installabilityErrors } : JSON.stringify(installabilityErrors);
  }, 10_000, 250);
  t.diagnostic(JSON.stringify(installability));
  const parsed = JSON.parse(manifest.data);
  assert.equal(parsed.display, "standalone");
  assert.equal(parsed.theme_color, "#111417");
  assert.equal(await page.getAttribute('meta[name="theme-color"]', "content"), parsed.theme_color);
  assert.ok(parsed.name && parsed.short_name, "name and short_name");
  assert.equal(new URL(parsed.start_url, manifest.url).href, daemon.url);
  // Each icon, loaded and decoded by the page itself: the size it says it has.
  const icons = await page.evaluate(async (list) => {
    const out = [];
    for (const icon of list) {
      const response = await fetch(new URL(icon.src, new URL("manifest.webmanifest", location.href)));
      const blob = await response.blob();
      const img = new Image();
      img.src = URL.createObjectURL(blob);
      await img.decode();
      out.push({ src: icon.src, sizes: icon.sizes, type: response.headers.get("content-type"), declared: icon.type, width: img.naturalWidth, height: img.naturalHeight });
      URL.revokeObjectURL(img.src);
    }
    return out;
  }, parsed.icons);
  t.diagnostic(JSON.stringify(icons));
  const pngs = icons.filter((i) => i.declared === "image/png");
  assert.ok(pngs.some((i) => i.sizes === "192x192") && pngs.some((i) => i.sizes === "512x512"), "192 and 512 PNG icons");
  for (const icon of icons) {
    assert.equal(icon.type, icon.declared, `${icon.src}: served as ${icon.type}`);
    if (icon.sizes !== "any") assert.equal(`${icon.width}x${icon.height}`, icon.sizes, `${icon.src}`);
  }
  assert.deepEqual(errors, []);
  await page.close();
});

test("the login page and a share link's page link the same manifest and theme colour", async () => {
  const page = await context.newPage();
  // On the daemon with an account: without accounts login.html goes on to the viewer at
  // once, and the manifest asked for could be the viewer's (or the page gone: "Not attached
  // to an active page", as a CI run failed).
  for (const url of [`${guarded.url}login.html`, `${guarded.url}share/not-a-valid-token`]) {
    await page.goto(url);
    assert.equal(page.url(), url, "the page stayed where it was opened");
    const { manifest } = await manifestOf(page);
    assert.equal(manifest.url, `${guarded.url}manifest.webmanifest`, `${url}: manifest`);
    assert.deepEqual(manifest.errors, [], `${url}: manifest errors`);
    assert.equal(await page.getAttribute('meta[name="theme-color"]', "content"), "#111417", `${url}: theme colour`);
    assert.match(await page.getAttribute('meta[name="viewport"]', "content"), /width=device-width/, `${url}: viewport`);
  }
  await page.close();
});
