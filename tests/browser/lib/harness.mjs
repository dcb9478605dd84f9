// harness.mjs — the real things the browser tests drive: pyimagestreamd from this tree, Debian's
// Chromium through playwright-core, Debian's nginx, and a delaying TCP relay. No mocks.
//
// Interface:
//   REPO, ARTIFACTS            the repository root; test-artifacts/browser under it
//   scaled(ms)                 ms times PYIMAGESTREAM_TIMEOUT_SCALE (default 1), for every wait
//   freePort()                 a free TCP port on 127.0.0.1
//   accounts(users, opts), oneAccount(name, password)
//                              an auth: section with accounts made by the daemon's
//                              `user add`, and its command line (below)
//   startDaemon(cameras, opts) a running daemon: {port, url, state(), stop(), start(), close()}
//                              opts: maxClients, extraYaml (more top-level config), headers
//                              (sent with state(), e.g. HTTP Basic when accounts exist),
//                              tls {certificate, key, ca} (PEM paths: the daemon serves
//                              https, and url and state() use it, trusting only `ca`)
//   daemonAndBrowser(cameras, opts)
//                              before/after hooks (node:test) of a test file: a daemon
//                              (startDaemon(cameras, opts)) and a Chromium; returns
//                              {daemon, browser}, filled in by before()
//   launchBrowser({args})      Chromium (headless, fresh profile), args added to its flags
//   openPage(browser, url, {viewport, ...context options such as hasTouch})
//                              a page whose console errors, page errors and WebSocket sends
//                              are recorded: page.errors, and in the page window.__sent
//                              (window.__recordSends = false stops that) and window.__urls
//   waitFor(what, fn, ms)      poll fn() until it returns a truthy value that is not a string
//                              (a string means "not yet" and says why); throws naming `what`
//                              and the last answer on timeout
//   sleep(ms)
//   track(child)               kill this child process when the test process exits

import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import https from "node:https";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before } from "node:test";
import { chromium } from "playwright-core";

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const ARTIFACTS = path.join(REPO, "test-artifacts", "browser");
const SCALE = Number(process.env.PYIMAGESTREAM_TIMEOUT_SCALE || "1") || 1;
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

// Whatever happens to the test process, the daemons and nginx it started do not outlive it.
const children = new Set();
export function track(child) {
  children.add(child);
  child.on("exit", () => children.delete(child));
  return child;
}
process.on("exit", () => {
  // SIGTERM: nginx then stops its workers too, which SIGKILL would leave behind.
  for (const child of children) child.kill("SIGTERM");
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => process.exit(130));
}

export function scaled(ms) {
  return ms * SCALE;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function waitFor(what, fn, ms = 10_000, every = 100) {
  const deadline = Date.now() + scaled(ms);
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last && typeof last !== "string") return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${scaled(ms)} ms waiting for ${what} (last: ${last})`);
    }
    await sleep(every);
  }
}

export async function freePort() {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  server.close();
  await once(server, "close");
  return port;
}

function yamlCameras(cameras) {
  return Object.entries(cameras)
    .map(
      ([name, c]) =>
        `  ${name}:\n` +
        `    source: ${JSON.stringify(c.source ?? "testpattern")}\n` +
        `    width: ${c.width}\n    height: ${c.height}\n    fps: ${c.fps}\n` +
        `    quality: ${c.quality ?? 80}\n    stop_delay: ${c.stop_delay ?? 10}\n`,
    )
    .join("");
}

/** The daemon of this tree on 127.0.0.1 with cameras {name: {width, height, fps, ...}};
 * source defaults to the test pattern; webRoot defaults to the tree's web/. */
/**
 * An `auth:` section with accounts made with the daemon's own `user add` in a new folder
 * (users file and state directory), for a daemon that is not in the no-accounts mode (where
 * the login page goes straight on to the viewer). `users` maps names to roles; all share
 * `password`; `extraAuth` adds lines to the section (e.g. "  lock_after: 6\n"); `cameras`
 * names the daemon's cameras for the command line. Returns the
 * YAML to pass as startDaemon's extraYaml, the first account's Basic Authorization header,
 * the folder, and cli(args, input): the daemon's command line on that folder, as an
 * administrator runs it (e.g. cli(["share", "fish", "--expires", "10m"])).
 */
export function accounts(users, { password = "a long enough password", extraAuth = "", cameras = ["front"] } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "pyimagestream-accounts-"));
  const yaml =
    `auth:\n  users_file: ${JSON.stringify(path.join(dir, "users"))}\n` +
    `  state_directory: ${JSON.stringify(path.join(dir, "state"))}\n${extraAuth}`;
  const config = path.join(dir, "cli.yaml");
  // The command line's own config: `share CAMERA` checks the camera is one of these.
  writeFileSync(config, `${yaml}cameras: {${cameras.map((c) => `${c}: {}`).join(", ")}}\n`);
  const cli = (args, input = "") =>
    execFileSync(path.join(REPO, ".venv", "bin", "python"), ["-m", "pyimagestreamd", "--config", config, ...args], {
      cwd: REPO,
      input,
      encoding: "utf-8",
    });
  for (const [name, role] of Object.entries(users)) cli(["user", "add", name, "--role", role], `${password}\n`);
  const [first] = Object.keys(users);
  const authorization = "Basic " + Buffer.from(`${first}:${password}`).toString("base64");
  return { yaml, authorization, dir, cli };
}

/** accounts() with one viewer. */
export function oneAccount(name = "anna", password = "a long enough password") {
  return accounts({ [name]: "viewer" }, { password });
}

export async function startDaemon(
  cameras,
  { maxClients = 100, webRoot = path.join(REPO, "web"), extraYaml = "", headers = {}, tls = null } = {},
) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "pyimagestream-browser-"));
  const port = await freePort();
  const config = path.join(dir, "pyimagestream.yaml");
  const tlsYaml = tls
    ? `  tls:\n    certificate: ${JSON.stringify(tls.certificate)}\n    key: ${JSON.stringify(tls.key)}\n` +
      (tls.redirectFrom ? `    redirect_from: ${tls.redirectFrom}\n` : "")
    : "";
  writeFileSync(
    config,
    `server:\n  listen: "127.0.0.1"\n  port: ${port}\n` +
      `  web_root: ${JSON.stringify(webRoot)}\n  max_clients: ${maxClients}\n${tlsYaml}` +
      `${extraYaml}log_level: info\ncameras:\n${yamlCameras(cameras)}`,
  );
  const python = path.join(REPO, ".venv", "bin", "python");
  if (!existsSync(python)) throw new Error(`${python} is missing: run "make venv" first`);
  const url = `${tls ? "https" : "http"}://127.0.0.1:${port}/`;
  const ca = tls ? readFileSync(tls.ca) : null;
  let child = null;
  let log = "";

  const daemon = {
    port,
    url,
    dir,
    get log() {
      return log;
    },
    async start() {
      child = track(
        spawn(python, ["-m", "pyimagestreamd", "--config", config], {
          cwd: REPO,
          stdio: ["ignore", "pipe", "pipe"],
        }),
      );
      const keep = (chunk) => {
        log = (log + chunk).slice(-20_000);
      };
      child.stdout.on("data", keep);
      child.stderr.on("data", keep);
      const exited = once(child, "exit").then(([code]) => {
        throw new Error(`pyimagestreamd exited with ${code} while starting:\n${log}`);
      });
      exited.catch(() => {});
      try {
        await Promise.race([
          waitFor("pyimagestreamd to answer /api/state", () => daemon.state(), 15_000),
          exited,
        ]);
      } catch (err) {
        // A daemon that never answered must not outlive the failure: its pipes would keep
        // the test process waiting for ever.
        await daemon.stop();
        throw err;
      }
    },
    async state() {
      if (ca) return httpsJson(`${url}api/state`, { headers, ca, timeout: 2000 });
      const response = await fetch(`${url}api/state`, { headers, signal: AbortSignal.timeout(2000) });
      if (!response.ok) throw new Error(`api/state: ${response.status}`);
      return response.json();
    },
    async camera(name) {
      return (await daemon.state()).cameras.find((c) => c.name === name);
    },
    async stop() {
      if (!child || child.exitCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), scaled(5000));
      await exited;
      clearTimeout(timer);
    },
    async close() {
      await daemon.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await daemon.start();
  return daemon;
}

/** GET a JSON document over https, trusting only the CA given (fetch cannot be told one). */
function httpsJson(url, { headers, ca, timeout }) {
  return new Promise((resolve, reject) => {
    const request = https.get(url, { headers, ca, timeout }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk) => (body += chunk));
      response.on("end", () => {
        if (response.statusCode !== 200) reject(new Error(`${url}: ${response.statusCode}`));
        else resolve(JSON.parse(body));
      });
    });
    request.on("timeout", () => request.destroy(new Error(`${url}: no answer within ${timeout} ms`)));
    request.on("error", reject);
  });
}

// Headless Chromium as root in this kind of machine: no sandbox, no GPU, and none of the
// background connections a closed network would refuse. Playwright adds --headless and a fresh
// --user-data-dir of its own.
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Chromium; `args` are added to CHROMIUM_ARGS (e.g. one certificate to trust). */
/** The daemon and the Chromium that a test file's tests share, started before the first
 * and closed after the last (node:test hooks of the calling file). */
export function daemonAndBrowser(cameras, opts = {}) {
  const env = { daemon: null, browser: null };
  before(async () => {
    env.daemon = await startDaemon(cameras, opts);
    env.browser = await launchBrowser();
  });
  after(async () => {
    await env.browser?.close();
    await env.daemon?.close();
  });
  return env;
}

export async function launchBrowser({ args = [] } = {}) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (make deps)`);
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, ...args] });
}

/** A page that records console errors and every WebSocket message it sends. */
export async function openPage(browser, url, { viewport = { width: 1280, height: 800 }, ...more } = {}) {
  const context = await browser.newContext({ viewport, acceptDownloads: true, ...more });
  const page = await context.newPage();
  page.errors = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") page.errors.push(`console: ${msg.text()}`);
  });
  page.on("pageerror", (err) => page.errors.push(`pageerror: ${err.message}`));
  await page.addInitScript(() => {
    // Count what the page sends and which object URLs it makes and frees: the tests check
    // that nothing is requested while hidden and that no object URL leaks.
    window.__sent = [];
    window.__urls = { created: 0, revoked: 0 };
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
      if (window.__recordSends !== false) {
        window.__sent.push({ at: performance.now(), url: this.url, data: String(data) });
        if (window.__sent.length > 5000) window.__sent.splice(0, 1000);
      }
      return send.call(this, data);
    };
    const create = URL.createObjectURL;
    const revoke = URL.revokeObjectURL;
    URL.createObjectURL = function (obj) {
      window.__urls.created += 1;
      return create.call(URL, obj);
    };
    URL.revokeObjectURL = function (u) {
      window.__urls.revoked += 1;
      return revoke.call(URL, u);
    };
  });
  await page.goto(url);
  page.closeAll = () => context.close();
  return page;
}

export function artifactPath(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}
