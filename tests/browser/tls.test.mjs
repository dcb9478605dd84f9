// TLS in real Chromium: a test CA made here with the openssl command, a leaf for 127.0.0.1,
// and Chromium told to trust that one certificate by its public key's hash
// (--ignore-certificate-errors-spki-list: no system store is touched). Plain HTTP on the
// redirect listener lands on https, the login works with a Secure cookie, frames come over
// wss:, /stream.mjpg plays over https:, every answer has HSTS, and no CSP violation.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { X509Certificate, createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import * as check from "./lib/checks.mjs";
import { REPO, freePort, launchBrowser, startDaemon, waitFor } from "./lib/harness.mjs";

const CAMERAS = { fish: { width: 320, height: 240, fps: 15 } };
const PASSWORD = "fish food 42";
const python = path.join(REPO, ".venv", "bin", "python");
const dir = mkdtempSync(path.join(os.tmpdir(), "pyimagestream-tls-"));
const authYaml =
  `auth:\n  users_file: ${JSON.stringify(path.join(dir, "users"))}\n` +
  `  state_directory: ${JSON.stringify(path.join(dir, "state"))}\n`;
let daemon;
let browser;
let redirectPort;

function openssl(...args) {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

/** A CA and a leaf for 127.0.0.1 signed by it, as test_tls.py makes them. */
function makeCertificates() {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=pyimagestream test CA");
  openssl("req", ...ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1");
  writeFileSync(path.join(dir, "ext.cnf"), "subjectAltName=IP:127.0.0.1\n");
  openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1", "-extfile", "ext.cnf", "-out", "leaf.pem");
}

/** base64(SHA-256(SubjectPublicKeyInfo)): what --ignore-certificate-errors-spki-list takes. */
function spkiHash(pemFile) {
  const spki = new X509Certificate(readFileSync(pemFile)).publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(spki).digest("base64");
}

before(async () => {
  makeCertificates();
  const config = path.join(dir, "cli.yaml");
  writeFileSync(config, authYaml);
  execFileSync(python, ["-m", "pyimagestreamd", "--config", config, "user", "add", "anna"], {
    cwd: REPO,
    input: `${PASSWORD}\n`,
  });
  redirectPort = await freePort();
  const basic = "Basic " + Buffer.from(`anna:${PASSWORD}`).toString("base64");
  daemon = await startDaemon(CAMERAS, {
    extraYaml: authYaml,
    headers: { Authorization: basic },
    tls: {
      certificate: path.join(dir, "leaf.pem"),
      key: path.join(dir, "leaf.key"),
      ca: path.join(dir, "ca.pem"),
      redirectFrom: redirectPort,
    },
  });
  browser = await launchBrowser({
    args: [`--ignore-certificate-errors-spki-list=${spkiHash(path.join(dir, "leaf.pem"))}`],
  });
});

after(async () => {
  await browser?.close();
  await daemon?.close();
  rmSync(dir, { recursive: true, force: true });
});

test("over https: redirected from http, log in, frames over wss:, MJPEG over https:, HSTS, no CSP violation", async () => {
  assert.ok(daemon.url.startsWith("https://"));
  const context = await browser.newContext({ viewport: { width: 1024, height: 700 } });
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (err) => problems.push(`pageerror: ${err.message}`));
  page.on("console", (msg) => {
    // Only CSP: the login page's own session check is a 401 the console reports.
    if (msg.text().includes("Content Security Policy") || msg.text().startsWith("CSP violation")) {
      problems.push(msg.text());
    }
  });
  const answers = [];
  page.on("response", (response) => answers.push(response));
  const sockets = [];
  page.on("websocket", (ws) => sockets.push(ws.url()));

  // The plain-HTTP listener only redirects: the browser ends up on https, at the login page.
  await page.goto(`http://127.0.0.1:${redirectPort}/#camera=fish`);
  await waitFor("the login page over https", () => page.url() === `${daemon.url}login.html#camera=fish`);
  await page.fill("#name", "anna");
  await page.fill("#password", PASSWORD);
  await page.click("#submit");
  await waitFor("the viewer", () => !page.url().includes("login.html"));
  await check.waitFrames(page, "fish", 10);
  assert.ok(sockets.length > 0, "no WebSocket opened");
  for (const url of sockets) assert.ok(url.startsWith(`wss://127.0.0.1:${daemon.port}/`), url);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.httpOnly);
  assert.ok(session, `no session cookie in ${JSON.stringify(cookies.map((c) => c.name))}`);
  assert.equal(session.secure, true, "the session cookie is not Secure");

  // An MJPEG stream in an <img>, as dashboards show it.
  const size = await page.evaluate(async () => {
    const img = document.createElement("img");
    img.src = "stream.mjpg?camera=fish";
    document.body.append(img);
    const started = performance.now();
    while (!img.naturalWidth && performance.now() - started < 15_000) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const result = [img.naturalWidth, img.naturalHeight, img.currentSrc];
    img.remove();
    return result;
  });
  assert.deepEqual(size, [320, 240, `${daemon.url}stream.mjpg?camera=fish`]);

  const ours = answers.filter((r) => r.url().startsWith(daemon.url));
  assert.ok(ours.length >= 5, `only ${ours.length} answers seen`);
  for (const response of ours) {
    const hsts = (await response.allHeaders())["strict-transport-security"];
    assert.match(hsts ?? "", /^max-age=\d+/, `no HSTS on ${response.url()}`);
  }
  const redirect = answers.find((r) => r.url().startsWith(`http://127.0.0.1:${redirectPort}/`));
  assert.equal(redirect?.status(), 301);
  assert.deepEqual(problems, [], "CSP violations");
  await context.close();
});
