// web/saver.js on its own, in node: when the automatic data saver asks for smaller frames and
// when for full ones again, fed with frame arrivals on a made-up clock. The browser test
// (autosaver.test.mjs) checks the real thing over a throttled link.
import assert from "node:assert/strict";
import { test } from "node:test";
import { AutoSaver, MEASURE_MS, PROBE_MAX_MS, PROBE_MIN_MS } from "../../web/saver.js";

const SAVER = 640;
const FULL = 1280;

/** Feed up to `seconds` of frames at `fps` (seq stepping by `step`: camera frames per
 * delivered one), ticking every 250 ms, until .active changes (after that the server would
 * send frames of the other size). Returns the change as [seconds from the start, active]
 * (or none) and the time it stopped at. */
function run(saver, { from = 0, seconds, fps, width, bytes, step = 1, measuring = true, seq = { n: 0 } }) {
  const changes = [];
  const end = from + seconds * 1000;
  let nextFrame = fps > 0 ? from : Infinity;
  let now = from;
  for (; now < end; now += 250) {
    while (nextFrame <= now) {
      seq.n += step;
      saver.frameArrived({ width, seq: seq.n }, bytes, nextFrame);
      nextFrame += 1000 / fps;
    }
    if (saver.tick(now, measuring)) {
      changes.push([(now - from) / 1000, saver.active]);
      now += 250;
      break;
    }
  }
  return { changes, end: now };
}

test("full frames at under one a second while the camera makes more: smaller frames after the measuring time", () => {
  const saver = new AutoSaver(SAVER);
  const { changes } = run(saver, { seconds: 20, fps: 0.5, width: FULL, bytes: 40_000, step: 30 });
  assert.equal(changes.length, 1, JSON.stringify(changes));
  assert.deepEqual(changes[0][1], true);
  assert.ok(changes[0][0] >= MEASURE_MS / 1000 && changes[0][0] <= MEASURE_MS / 1000 + 0.5, `${changes[0][0]} s`);
});

test("no frame at all from a live camera for the measuring time counts as a slow link", () => {
  const saver = new AutoSaver(SAVER);
  const { changes } = run(saver, { seconds: 6, fps: 0, width: FULL, bytes: 0 });
  assert.deepEqual(changes, [[5, true]]);
});

test("full frames at the camera's rate, even a slow camera's, keep full frames", () => {
  for (const fps of [15, 1.2, 0.8]) {
    const saver = new AutoSaver(SAVER);
    // step 1: every frame the camera made arrived; 0.8 fps is the camera's own rate.
    const { changes } = run(saver, { seconds: 60, fps, width: FULL, bytes: 40_000, step: 1 });
    assert.deepEqual(changes, [], `${fps} fps`);
  }
});

test("1.5 full frames a second is inside the hysteresis: neither size changes to the other", () => {
  const full = new AutoSaver(SAVER);
  assert.deepEqual(run(full, { seconds: 60, fps: 1.5, width: FULL, bytes: 40_000, step: 10 }).changes, []);
  // Down first (a slower link), then small frames worth 1.5 full frames a second: stays down
  // until the probe.
  const saver = new AutoSaver(SAVER);
  const seq = { n: 0 };
  const down = run(saver, { seconds: 6, fps: 0.4, width: FULL, bytes: 40_000, step: 30, seq });
  assert.equal(saver.active, true);
  const { changes } = run(saver, { from: down.end, seconds: PROBE_MIN_MS / 1000 - 7, fps: 6, width: SAVER, bytes: 10_000, step: 2, seq });
  assert.deepEqual(changes, []);
});

test("small frames carrying two full frames' worth a second: full frames again", () => {
  const saver = new AutoSaver(SAVER);
  const seq = { n: 0 };
  const down = run(saver, { seconds: 6, fps: 0.4, width: FULL, bytes: 40_000, step: 30, seq });
  assert.equal(saver.active, true);
  assert.deepEqual(down.changes, [[5, true]]);
  // 15 fps x 10 kB = 150 kB/s >= 2 x 40 kB.
  const { changes } = run(saver, { from: down.end, seconds: 10, fps: 15, width: SAVER, bytes: 10_000, seq });
  assert.equal(changes.length, 1, JSON.stringify(changes));
  assert.equal(changes[0][1], false);
  const afterSwitch = changes[0][0] + (down.end - 5000) / 1000; // measured from the change down
  assert.ok(afterSwitch >= MEASURE_MS / 1000 && afterSwitch <= MEASURE_MS / 1000 + 0.5, `${afterSwitch} s`);
});

test("frames of the old size still on the way after a change are not counted", () => {
  const saver = new AutoSaver(SAVER);
  const seq = { n: 0 };
  const down = run(saver, { seconds: 6, fps: 0.4, width: FULL, bytes: 40_000, step: 30, seq });
  assert.equal(saver.active, true);
  // Full frames keep landing (they were in flight): as small ones they would be 200 kB/s.
  const { changes } = run(saver, { from: down.end, seconds: 20, fps: 5, width: FULL, bytes: 40_000, seq });
  assert.deepEqual(changes, []);
});

test("on a link that stays slow the probes back off: 30 s, then 60 s, 120 s ... up to 300 s", () => {
  const saver = new AutoSaver(SAVER);
  const seq = { n: 0 };
  let now = run(saver, { seconds: 6, fps: 0.4, width: FULL, bytes: 40_000, step: 30, seq }).end;
  const waits = [];
  for (let probe = 0; probe < 6; probe += 1) {
    assert.equal(saver.active, true);
    const small = run(saver, { from: now, seconds: 400, fps: 2, width: SAVER, bytes: 10_000, step: 7, seq });
    assert.equal(small.changes[0][1], false, "no probe");
    waits.push(small.changes[0][0]);
    // The probe's full frames are too slow again: back down after the measuring time.
    const full = run(saver, { from: small.end, seconds: 10, fps: 0.4, width: FULL, bytes: 40_000, step: 30, seq });
    assert.deepEqual(full.changes.map((c) => c[1]), [true]);
    now = full.end;
  }
  const expected = [30, 60, 120, 240, 300, 300].map((s) => Math.min(s, PROBE_MAX_MS / 1000));
  waits.forEach((w, i) => assert.ok(Math.abs(w - expected[i]) <= 0.5, `probe waits ${waits}`));
});

test("not measuring (paused, not live, reconnecting) forgets what was measured", () => {
  const saver = new AutoSaver(SAVER);
  const seq = { n: 0 };
  // 4 s of slow full frames, a pause, 4 s more: never 5 s in one go, so nothing changes.
  let end = run(saver, { seconds: 4, fps: 0.4, width: FULL, bytes: 40_000, step: 30, seq }).end;
  end = run(saver, { from: end, seconds: 3, fps: 0, width: FULL, bytes: 0, measuring: false }).end;
  const { changes } = run(saver, { from: end, seconds: 4, fps: 0.4, width: FULL, bytes: 40_000, step: 30, seq });
  assert.deepEqual(changes, []);
  assert.equal(saver.active, false);
});
