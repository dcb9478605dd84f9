// engines.mjs — the other two browser engines, behind one small page interface: Debian's
// Firefox ESR over WebDriver BiDi (puppeteer-core from npm, pinned in package-lock.json, never
// downloading a browser) and Debian's WebKitGTK (Safari's engine) through its WebDriver,
// WebKitWebDriver, driving MiniBrowser under Xvfb over classic WebDriver HTTP.
//
// Classic WebDriver has no way to run a script before the page's own, so both engines load
// the viewer from a copy of web/ whose index.html loads test-hooks.js first: it records
// errors (error events, unhandled rejections, console.error, CSP violations) in window.__errors and counts
// object URLs in window.__urls, as the Chromium tests' init script does.
//
// Interface:
//   hookedWebRoot()                a temporary copy of web/ with the hooks: {dir, remove()}
//   launchEngine(name)             name "firefox" or "webkit": {name, version, open(url,
//                                  {width, height}), close()}
//   page.evaluate(fn, ...args)     run fn (a function or its source) in the page with
//                                  JSON arguments; its (awaited) JSON result
//   page.goto(url), page.setSize(width, height) (the viewport), page.screenshot() (PNG
//   Buffer of the viewport), page.close()

import { spawn } from "node:child_process";
import { once } from "node:events";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import puppeteer from "puppeteer-core";
import { REPO, freePort, scaled, sleep, track, waitFor } from "./harness.mjs";

export const FIREFOX = process.env.FIREFOX || "/usr/bin/firefox-esr";
export const WEBKIT_DRIVER = process.env.WEBKIT_DRIVER || "/usr/bin/WebKitWebDriver";
const MINIBROWSER_DIRS = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"].map(
  (d) => path.join(d, "webkit2gtk-4.1", "MiniBrowser"),
);

const HOOKS = `"use strict";
window.__errors = [];
window.addEventListener("error", (e) => window.__errors.push("error: " + e.message));
window.addEventListener("unhandledrejection", (e) => window.__errors.push("rejection: " + e.reason));
document.addEventListener("securitypolicyviolation", (e) =>
  window.__errors.push(\`CSP violation: \${e.violatedDirective} \${e.blockedURI} \${e.sourceFile}:\${e.lineNumber} \${e.sample}\`),
);
(() => {
  const error = console.error;
  console.error = function (...args) {
    window.__errors.push("console: " + args.join(" "));
    return error.apply(this, args);
  };
  window.__urls = { created: 0, revoked: 0 };
  const create = URL.createObjectURL;
  const revoke = URL.revokeObjectURL;
  URL.createObjectURL = (obj) => ((window.__urls.created += 1), create.call(URL, obj));
  URL.revokeObjectURL = (u) => ((window.__urls.revoked += 1), revoke.call(URL, u));
})();
`;

export function hookedWebRoot() {
  const dir = mkdtempSync(path.join(os.tmpdir(), "pyimagestream-web-"));
  cpSync(path.join(REPO, "web"), dir, { recursive: true });
  const index = path.join(dir, "index.html");
  const html = readFileSync(index, "utf8");
  const hooked = html.replace(/(\s*<script type="module")/, '\n  <script src="test-hooks.js"></script>$1');
  if (hooked === html) throw new Error("web/index.html: no module script to put the hooks before");
  writeFileSync(index, hooked);
  writeFileSync(path.join(dir, "test-hooks.js"), HOOKS);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

function source(fn, args) {
  return `(${typeof fn === "function" ? fn.toString() : fn})(...${JSON.stringify(args)})`;
}

async function launchFirefox() {
  if (!existsSync(FIREFOX)) throw new Error(`${FIREFOX} is missing: install Debian's firefox-esr (make deps)`);
  const browser = await puppeteer.launch({
    browser: "firefox",
    executablePath: FIREFOX,
    headless: true,
    protocol: "webDriverBiDi",
  });
  return {
    name: "firefox",
    version: await browser.version(),
    async open(url, { width = 1280, height = 800 } = {}) {
      const page = await browser.newPage();
      await page.setViewport({ width, height });
      await page.goto(url);
      return {
        evaluate: (fn, ...args) => page.evaluate(source(fn, args)),
        goto: (to) => page.goto(to),
        setSize: (w, h) => page.setViewport({ width: w, height: h }),
        screenshot: async () => Buffer.from(await page.screenshot({ encoding: "base64" }), "base64"),
        close: () => page.close(),
      };
    },
    close: () => browser.close(),
  };
}

async function startXvfb() {
  // -displayfd: Xvfb picks a free display and writes its number to that descriptor.
  const child = track(
    spawn("Xvfb", ["-displayfd", "3", "-screen", "0", "1400x1000x24", "-nolisten", "tcp"], {
      stdio: ["ignore", "ignore", "pipe", "pipe"],
    }),
  );
  let out = "";
  child.stdio[3].on("data", (chunk) => (out += chunk));
  await waitFor("Xvfb to say its display", () => /\d+\n/.test(out), 10_000, 50);
  return { display: `:${out.trim()}`, stop: () => child.kill("SIGTERM") };
}

async function webdriver(base, method, route, body) {
  const response = await fetch(`${base}${route}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json();
  if (json.value && json.value.error) {
    throw new Error(`WebDriver ${method} ${route}: ${json.value.error}: ${json.value.message}`);
  }
  return json.value;
}

async function launchWebKit() {
  if (!existsSync(WEBKIT_DRIVER)) {
    throw new Error(`${WEBKIT_DRIVER} is missing: install Debian's webkit2gtk-driver (make deps)`);
  }
  const minibrowser = MINIBROWSER_DIRS.find((p) => existsSync(p));
  if (!minibrowser) throw new Error("WebKitGTK's MiniBrowser is missing (libwebkit2gtk-4.1-0)");
  const xvfb = await startXvfb();
  const port = await freePort();
  const driver = track(
    spawn(WEBKIT_DRIVER, [`--port=${port}`, "--host=127.0.0.1"], {
      env: { ...process.env, DISPLAY: xvfb.display },
      stdio: ["ignore", "ignore", "ignore"],
    }),
  );
  const base = `http://127.0.0.1:${port}`;
  await waitFor("WebKitWebDriver to answer", async () => (await webdriver(base, "GET", "/status")).ready, 10_000, 100);
  let version = "";
  return {
    name: "webkit",
    get version() {
      return version;
    },
    async open(url, { width = 1280, height = 800 } = {}) {
      // --full-screen: no toolbar, so the window's size is the viewport's (no window manager
      // runs under Xvfb to make it really full screen).
      const created = await webdriver(base, "POST", "/session", {
        capabilities: {
          alwaysMatch: {
            "webkitgtk:browserOptions": { binary: minibrowser, args: ["--automation", "--full-screen"] },
          },
        },
      });
      version = created.capabilities.browserVersion;
      const s = `/session/${created.sessionId}`;
      const page = {
        async evaluate(fn, ...args) {
          const result = await webdriver(base, "POST", `${s}/execute/async`, {
            script:
              "const done = arguments[arguments.length - 1];" +
              `Promise.resolve().then(() => ${source(fn, args)})` +
              ".then((value) => done({ value }), (err) => done({ error: String(err && err.stack || err) }));",
            args: [],
          });
          if (result && result.error) throw new Error(`in WebKit: ${result.error}`);
          return result ? result.value : undefined;
        },
        goto: (to) => webdriver(base, "POST", `${s}/url`, { url: to }),
        setSize: (w, h) => webdriver(base, "POST", `${s}/window/rect`, { x: 0, y: 0, width: w, height: h }),
        screenshot: async () => Buffer.from(await webdriver(base, "GET", `${s}/screenshot`), "base64"),
        close: () => webdriver(base, "DELETE", s),
      };
      await webdriver(base, "POST", `${s}/timeouts`, { script: scaled(30_000) });
      await page.setSize(width, height);
      await page.goto(url);
      return page;
    },
    async close() {
      driver.kill("SIGTERM");
      await Promise.race([once(driver, "exit"), sleep(2000)]);
      xvfb.stop();
    },
  };
}

export function launchEngine(name) {
  if (name === "firefox") return launchFirefox();
  if (name === "webkit") return launchWebKit();
  throw new Error(`unknown engine ${name}`);
}
