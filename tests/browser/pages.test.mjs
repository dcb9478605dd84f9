// The pages around the viewer — the login page (login.html) and a share link's page
// (authapi.py: here "Link not valid") — in all three engines at 390x844, 844x390 and
// 1280x800: no overflow, the card on screen, 44 px controls, and the viewer's own bar and
// colours (compared with the viewer page at the same size in the same engine). Screenshots
// go to test-artifacts/browser/ (ENGINE-login-WxH.png, ENGINE-link-WxH.png).
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { launchEngine } from "./lib/engines.mjs";
import { artifactPath, launchBrowser, oneAccount, sleep, startDaemon, waitFor } from "./lib/harness.mjs";

const SIZES = [
  [390, 844],
  [844, 390],
  [1280, 800],
];

// In the page: sizes, the bar, the card and its controls, the colours.
function measure() {
  const box = (el) => {
    if (!el) return null;
    const r = el.getBoundingClientRect();
    return { x: r.x, y: r.y, width: r.width, height: r.height, right: r.right, bottom: r.bottom };
  };
  const d = document.documentElement;
  const bar = document.querySelector("header.bar");
  const style = (el, prop) => (el ? getComputedStyle(el)[prop] : null);
  const controls = [...document.querySelectorAll("main input, main button, main a")].map((el) => ({
    what: el.id || el.tagName,
    ...box(el),
  }));
  return {
    innerWidth: window.innerWidth,
    innerHeight: window.innerHeight,
    scrollWidth: d.scrollWidth,
    scrollHeight: d.scrollHeight,
    mainScroll: (() => {
      const m = document.querySelector("main");
      return m ? { scrollHeight: m.scrollHeight, clientHeight: m.clientHeight, scrollWidth: m.scrollWidth, clientWidth: m.clientWidth } : null;
    })(),
    bar: box(bar),
    barTitle: bar ? bar.textContent.trim() : "",
    barBackground: style(bar, "backgroundColor"),
    pageBackground: style(document.body, "backgroundColor"),
    font: style(document.body, "fontFamily"),
    card: box(document.querySelector("main .card")),
    controls,
    themeColour: document.querySelector('meta[name="theme-color"]')?.content ?? null,
    manifest: document.querySelector('link[rel="manifest"]')?.href ?? null,
    viewport: document.querySelector('meta[name="viewport"]')?.content ?? null,
  };
}

// Chromium through playwright, behind the same small interface as engines.mjs.
async function launchChromium() {
  const browser = await launchBrowser();
  return {
    name: "chromium",
    version: browser.version(),
    async open(url, { width = 1280, height = 800 } = {}) {
      const context = await browser.newContext({ viewport: { width, height } });
      const page = await context.newPage();
      await page.goto(url);
      return {
        evaluate: (fn, ...args) => page.evaluate(`(${fn.toString()})(...${JSON.stringify(args)})`),
        goto: (to) => page.goto(to),
        setSize: (w, h) => page.setViewportSize({ width: w, height: h }),
        screenshot: () => page.screenshot(),
        close: () => context.close(),
      };
    },
    close: () => browser.close(),
  };
}

// The viewer to compare with, on a daemon without accounts; the login page on one with an
// account (without accounts everyone is let in, and the login page goes straight on to the
// viewer).
const CAMERAS = { front: { width: 640, height: 360, fps: 5, stop_delay: 1 } };
let accounts;
let daemon;
let guarded;

before(async () => {
  accounts = oneAccount();
  daemon = await startDaemon(CAMERAS);
  guarded = await startDaemon(CAMERAS, {
    extraYaml: accounts.yaml,
    headers: { Authorization: accounts.authorization },
  });
});

after(async () => {
  await guarded?.close();
  await daemon?.close();
  if (accounts) rmSync(accounts.dir, { recursive: true, force: true });
});

for (const engineName of ["chromium", "firefox", "webkit"]) {
  describe(engineName, () => {
    let engine;
    let page;

    before(async () => {
      engine = engineName === "chromium" ? await launchChromium() : await launchEngine(engineName);
      page = await engine.open(`${guarded.url}login.html`);
    });

    after(async () => {
      await page?.close().catch(() => {});
      await engine?.close();
    });

    async function at(url, width, height) {
      await page.setSize(width, height);
      await page.goto(url);
      await waitFor(`${url} at ${width}x${height}`, async () => {
        const m = await page.evaluate(measure);
        return m.innerWidth === width && m.innerHeight === height && m.bar ? m : `${m.innerWidth}x${m.innerHeight}`;
      });
      await sleep(200); // fonts and layout settle before the screenshot
      return page.evaluate(measure);
    }

    test(`${engineName}: the login and share-link pages fit 390x844, 844x390 and 1280x800 in the viewer's style`, async (t) => {
      for (const [width, height] of SIZES) {
        const viewer = await at(`${daemon.url}#camera=front`, width, height);
        for (const [name, url] of [
          ["login", `${guarded.url}login.html`],
          ["link", `${guarded.url}share/not-a-valid-token`],
        ]) {
          const m = await at(url, width, height);
          writeFileSync(artifactPath(`${engineName}-${name}-${width}x${height}.png`), await page.screenshot());
          const what = `${name} at ${width}x${height}`;
          t.diagnostic(JSON.stringify({ what, bar: m.bar, card: m.card, scroll: [m.scrollWidth, m.scrollHeight], main: m.mainScroll }));
          assert.ok(m.scrollWidth <= width, `${what}: horizontal overflow ${m.scrollWidth}`);
          assert.ok(m.scrollHeight <= height, `${what}: vertical overflow ${m.scrollHeight}`);
          assert.ok(m.mainScroll.scrollHeight <= m.mainScroll.clientHeight + 1, `${what}: the page scrolls inside: ${JSON.stringify(m.mainScroll)}`);
          assert.ok(m.mainScroll.scrollWidth <= m.mainScroll.clientWidth + 1, `${what}: the page scrolls sideways inside`);
          // The viewer's bar, at the top, across the page, the same height and colour.
          assert.equal(m.bar.y, 0, `${what}: bar not at the top`);
          assert.ok(Math.abs(m.bar.width - width) <= 1, `${what}: bar ${m.bar.width} wide`);
          assert.equal(m.barTitle, "pyimagestream", `${what}: bar title`);
          assert.equal(m.barBackground, viewer.barBackground, `${what}: bar colour`);
          assert.equal(m.pageBackground, viewer.pageBackground, `${what}: page colour`);
          assert.equal(m.font, viewer.font, `${what}: font`);
          if (viewer.bar.y === 0 && viewer.bar.width > width / 2) {
            assert.ok(Math.abs(m.bar.height - viewer.bar.height) <= 1, `${what}: bar ${m.bar.height} px high, the viewer's ${viewer.bar.height}`);
          }
          // The card below the bar, on screen, centred; its controls on screen and touch-sized.
          assert.ok(m.card, `${what}: no card`);
          assert.ok(m.card.y >= m.bar.bottom && m.card.bottom <= height && m.card.x >= 0 && m.card.right <= width, `${what}: card off screen ${JSON.stringify(m.card)}`);
          assert.ok(Math.abs(m.card.x - (width - m.card.right)) <= 2, `${what}: card not centred`);
          for (const c of m.controls) {
            assert.ok(c.y >= 0 && c.bottom <= height && c.x >= 0 && c.right <= width, `${what}: ${c.what} off screen`);
            if (c.what !== "A") assert.ok(c.height >= 44, `${what}: ${c.what} is ${c.height} px high`);
          }
          // Installable from every page: the same manifest and theme colour as the viewer.
          assert.equal(m.themeColour, viewer.themeColour, `${what}: theme colour`);
          assert.equal(new URL(m.manifest).pathname, new URL(viewer.manifest).pathname, `${what}: manifest`);
          assert.match(m.viewport, /width=device-width/, `${what}: viewport`);
        }
      }
      if (engine.version) t.diagnostic(`${engine.name} ${await engine.version}`);
    });
  });
}
