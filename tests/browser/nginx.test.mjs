// The viewer behind Debian's nginx under /cam1/, with the configuration README.md gives: the
// same checks as against the daemon directly.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import * as check from "./lib/checks.mjs";
import { launchBrowser, openPage, scaled, startDaemon } from "./lib/harness.mjs";
import { startNginx } from "./lib/nginx.mjs";

const CAMERAS = {
  front: { width: 640, height: 360, fps: 20, stop_delay: 1 },
  back: { width: 320, height: 240, fps: 15, stop_delay: 1 },
};
let daemon;
let nginx;
let browser;
let page;

before(async () => {
  daemon = await startDaemon(CAMERAS);
  nginx = await startNginx(daemon.port);
  browser = await launchBrowser();
  page = await openPage(browser, `${nginx.url}#camera=front`);
});

after(async () => {
  await browser?.close();
  await nginx?.stop();
  await daemon?.close();
});

test("through nginx the page loads with no console errors, over ws://HOST/cam1/websocket/", async () => {
  await check.loadsCleanly(page, "front");
  const urls = await page.evaluate(() => [...new Set(window.__sent.map((m) => m.url))]);
  assert.deepEqual(urls, [`ws://127.0.0.1:${nginx.port}/cam1/websocket/front`]);
});

test("through nginx /cam1 redirects to /cam1/", async () => {
  const response = await fetch(nginx.url.replace(/\/$/, ""), { redirect: "manual" });
  assert.equal(response.status, 301);
  assert.match(response.headers.get("location"), /\/cam1\/$/);
});

test("through nginx the fps shown is above 10", async (t) => {
  t.diagnostic(JSON.stringify(await check.fpsAbove(page, "front", 10)));
});

test("through nginx the picture changes", async () => {
  await check.pictureChanges(page, "front");
});

test("through nginx the overlay's fps, frame age and kB/s agree with the camera", async (t) => {
  t.diagnostic(JSON.stringify(await check.overlaySane(page, daemon, "front")));
});

test("through nginx the grid and single view work", async () => {
  await check.gridAndSingle(page, nginx.url, Object.keys(CAMERAS));
});

test("through nginx a paused camera sleeps and wakes", async (t) => {
  await page.goto(`${nginx.url}#camera=front`);
  t.diagnostic(JSON.stringify(await check.sleepAndWake(page, daemon, "front")));
});

test("through nginx a hidden tab requests nothing", async (t) => {
  t.diagnostic(JSON.stringify(await check.hiddenPauses(page, daemon, "front")));
});

test("through nginx the frame downloads", async () => {
  await check.downloadFrame(page, "front");
});

test("through nginx the controls work by keyboard", async () => {
  await check.accessible(page, "front");
});

test("through nginx the page reconnects after a daemon restart", async (t) => {
  t.diagnostic(JSON.stringify(await check.reconnects(page, daemon, "front")));
});

// Every spelling of the stream, the default camera's included: all behind one location.
for (const path of ["stream.mjpg", "stream/front.mjpg", "stream/back.mjpg", "stream", "?action=stream"]) {
  test(`through nginx ${path} streams fresh parts (proxy_buffering off)`, async () => {
    const controller = new AbortController();
    // A stream that stalls must fail the test, not hang it.
    const timer = setTimeout(() => controller.abort(), scaled(10_000));
    const response = await fetch(`${nginx.url}${path}`, { signal: controller.signal });
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type"), /^multipart\/x-mixed-replace;boundary=/);
    const reader = response.body.getReader();
    const decoder = new TextDecoder("latin1");
    let text = "";
    const stamps = [];
    while (stamps.length < 10) {
      const { value, done } = await reader.read();
      assert.ok(!done, "the stream ended");
      text += decoder.decode(value);
      for (const m of text.matchAll(/X-Timestamp: (\d+\.\d{3})\r\n/g)) stamps.push(Number(m[1]));
      text = text.slice(text.lastIndexOf("X-Timestamp") + 1);
    }
    clearTimeout(timer);
    controller.abort();
    const age = Date.now() / 1000 - stamps[stamps.length - 1];
    assert.ok(age < 1.0, `the last part is ${age.toFixed(3)} s old through nginx`);
  });
}

for (const path of ["snapshot.jpg", "snapshot/back.jpg", "snapshot", "?action=snapshot"]) {
  test(`through nginx ${path} is a JPEG`, async () => {
    const response = await fetch(`${nginx.url}${path}`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "image/jpeg");
    const body = new Uint8Array(await response.arrayBuffer());
    assert.deepEqual([...body.slice(0, 2)], [0xff, 0xd8]);
  });
}

test("through nginx <img src=stream.mjpg> shows a moving picture", async () => {
  const differs = await page.evaluate(async () => {
    const img = new Image();
    img.src = new URL("stream/front.mjpg", location.href).href;
    document.body.append(img);
    await new Promise((resolve, reject) => {
      img.onload = resolve;
      img.onerror = reject;
      setTimeout(resolve, 3000);
    });
    const grab = () => {
      const c = document.createElement("canvas");
      c.width = 64;
      c.height = 36;
      c.getContext("2d").drawImage(img, 0, 0, 64, 36);
      return c.toDataURL();
    };
    const first = grab();
    await new Promise((r) => setTimeout(r, 500));
    const second = grab();
    img.remove();
    return first !== second;
  });
  assert.ok(differs, "the <img> picture did not change in 0.5 s");
});
