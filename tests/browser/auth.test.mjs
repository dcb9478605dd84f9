// Accounts in real Chromium: log in, watch, reload, log out (streams cut), wrong password and
// back-off, a share link (one camera, revoked -> cut off), and no CSP violation anywhere.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, test } from "node:test";
import * as check from "./lib/checks.mjs";
import { accounts, daemonAndBrowser, sleep, waitFor } from "./lib/harness.mjs";

const CAMERAS = {
  fish: { width: 320, height: 240, fps: 15 },
  door: { width: 320, height: 240, fps: 15 },
};
const PASSWORD = "fish food 42";
// anna is an admin; the link tests run the command line (`share`) as an administrator would.
const users = accounts(
  { anna: "admin" },
  { password: PASSWORD, extraAuth: "  lock_after: 6\n  lock_duration: 3\n", cameras: Object.keys(CAMERAS) },
);
const cli = users.cli;
const env = daemonAndBrowser(CAMERAS, { extraYaml: users.yaml, headers: { Authorization: users.authorization } });
const violations = [];

async function newPage() {
  const context = await env.browser.newContext({ viewport: { width: 1024, height: 700 } });
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const page = await context.newPage();
  page.on("console", (msg) => {
    if (msg.text().includes("Content Security Policy") || msg.text().startsWith("CSP violation")) {
      violations.push(msg.text());
    }
  });
  return page;
}

async function logIn(page, name, password) {
  await page.fill("#name", name);
  await page.fill("#password", password);
  await page.click("#submit");
}

after(() => {
  rmSync(users.dir, { recursive: true, force: true });
});

test("the viewer sends a stranger to the login page; a wrong password says so", async () => {
  const page = await newPage();
  await page.goto(`${env.daemon.url}#camera=fish`);
  await waitFor("the login page", () => page.url().endsWith("/login.html#camera=fish"));
  await logIn(page, "anna", "not the password");
  await waitFor("the message", async () => (await page.textContent("#message")) === "Wrong name or password.");
  await page.context().close();
});

test("log in, watch, reload (still logged in), log out: the other tab's stream is cut", async () => {
  const page = await newPage();
  await page.goto(`${env.daemon.url}#camera=fish`);
  await waitFor("the login page", () => page.url().includes("/login.html"));
  await logIn(page, "anna", PASSWORD);
  await waitFor("the viewer", () => !page.url().includes("login.html"));
  await check.waitFrames(page, "fish", 10);
  await page.reload();
  assert.ok(!page.url().includes("login.html"), "a reload keeps the session");
  await check.waitFrames(page, "fish", 10);
  assert.equal(await page.textContent("#user"), "anna");
  // A second tab of the same browser shares the session cookie.
  const other = await page.context().newPage();
  await other.goto(`${env.daemon.url}#camera=fish`);
  await check.waitFrames(other, "fish", 5);
  await page.click("#logout");
  await waitFor("the login page after logout", () => page.url().includes("login.html"));
  await sleep(1000);
  const stopped = await check.frames(other, "fish");
  await sleep(1500);
  assert.equal(await check.frames(other, "fish"), stopped, "frames still arrive after logout");
  const state = await env.daemon.state();
  assert.equal(state.clients, 0, "the logged-out session still holds a WebSocket");
  await page.context().close();
});

test("a share link shows its camera only and stops at once when revoked", async () => {
  const url = cli(["share", "fish", "--expires", "10m", "--label", "for Anna", "--base-url", env.daemon.url]).trim();
  const page = await newPage();
  await page.goto(url);
  await waitFor("the viewer on fish", () => page.url().endsWith("/#camera=fish"));
  await check.waitFrames(page, "fish", 5);
  const door = await page.evaluate(async () => (await fetch("snapshot/door.jpg")).status);
  assert.equal(door, 403);
  const cameras = await page.evaluate(async () => (await (await fetch("api/state")).json()).cameras.map((c) => c.name));
  assert.deepEqual(cameras, ["fish"]);
  const id = cli(["share", "list"]).split("\t")[0];
  cli(["share", "revoke", id]);
  await sleep(2000);
  const stopped = await check.frames(page, "fish");
  await sleep(1500);
  assert.equal(await check.frames(page, "fish"), stopped, "frames still arrive after the revocation");
  await page.goto(url);
  assert.match(await page.textContent("main h2"), /Link not valid/);
  await page.context().close();
});

test("the admin panel lists share links and revokes one", async () => {
  cli(["share", "door", "--expires", "1h", "--label", "neighbour"]);
  const page = await newPage();
  await page.goto(`${env.daemon.url}login.html`);
  await logIn(page, "anna", PASSWORD);
  await waitFor("the viewer", () => !page.url().includes("login.html"));
  await page.click("#shares-toggle");
  await waitFor("the list", () => page.locator("#shares li").count());
  assert.match(await page.textContent("#shares li"), /door — neighbour/);
  await page.click("#shares li .revoke");
  await waitFor("the link gone", async () => (await page.locator("#shares li").count()) === 0);
  assert.equal(cli(["share", "list"]), "");
  await page.context().close();
});

test("repeated wrong passwords are slowed down, with a message", async () => {
  const page = await newPage();
  await page.goto(`${env.daemon.url}login.html`);
  for (let i = 0; i < 8; i += 1) {
    await logIn(page, "anna", `wrong ${i}`);
    await waitFor("an answer", async () => Boolean(await page.textContent("#message")));
    if (/Too many failed logins/.test(await page.textContent("#message"))) break;
    await waitFor("the button", async () => !(await page.isDisabled("#submit")));
  }
  assert.match(await page.textContent("#message"), /Too many failed logins: try again in \d+ s/);
  assert.ok(await page.isDisabled("#submit"), "the button waits out the back-off");
  await page.context().close();
});

test("no Content-Security-Policy violation on any page", () => {
  assert.deepEqual(violations, []);
});
