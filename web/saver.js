/*
 * saver.js — the automatic data saver: do a camera's full frames fit the link? Pure logic,
 * no I/O, no DOM.
 *
 * Fed with every frame message of one camera's connection as it arrives (its metadata and
 * size in bytes) and ticked by the page, it decides from what the link really delivered
 * over the last MEASURE_MS, counting only frames of the size asked for at the time (frames
 * already on the way when the size changed are left out):
 *   - smaller: full frames (wider than the saver width) arrived at under one a second while
 *     the camera made more (their seq numbers skip), so the link, not the camera, is the
 *     limit. A live camera that delivered fewer than two frames in that time counts too.
 *   - full again: at the saver width the link carried at least two full frames' worth of
 *     bytes a second (the size of the last full frames is remembered), or, since small frames
 *     on a link with room to spare prove little (a slow camera, small frames), as a probe
 *     after PROBE_MIN_MS; a probe that has to go back to smaller frames at once doubles the
 *     next probe's delay, up to PROBE_MAX_MS.
 * Between "under one" and "two" nothing changes: a link that carries 1.5 full frames a second
 * stays where it is, so the size does not flap.
 *
 * Times are milliseconds on one clock (performance.now() is fine).
 *
 * Interface:
 *   new AutoSaver(saverWidth)
 *   .active                   true: the link is too slow, ask for at most saverWidth
 *   .frameArrived(meta, bytes, now)
 *                             a frame message (meta.width, meta.seq) arrived
 *   .tick(now, measuring)     call often (every 250 ms); measuring false (not connected, not
 *                             live, paused, or full frames are no wider than saverWidth)
 *                             forgets the measurement. Returns true when .active changed.
 *   .reset()                  back to full frames, measurement and probe delay forgotten
 *   .snapshot()               {active, fullBytes, fps, bytesPerSecond, probeDelay} for display
 */

export const MEASURE_MS = 5_000;
export const PROBE_MIN_MS = 30_000;
export const PROBE_MAX_MS = 300_000;
// A probe that falls back within this time failed: the link has not changed.
const PROBE_FAILED_MS = 3 * MEASURE_MS;

export class AutoSaver {
  constructor(saverWidth) {
    this.saverWidth = saverWidth;
    this.reset();
  }

  reset() {
    this.active = false;
    this.since = null; // measuring since; null: not measuring
    this.frames = []; // [arrived, bytes, seq] of frames of the size asked for, oldest first
    this.fullBytes = NaN; // average size of the recent full frames
    this.probeDelay = PROBE_MIN_MS;
    this.activeSince = 0;
    this.fullSince = 0;
    this.probed = false; // the current full period is a probe
  }

  frameArrived(meta, bytes, now) {
    if (this.since === null) return;
    const full = meta.width > this.saverWidth;
    if (full === this.active) return; // on the way before the size changed
    if (full) {
      this.fullBytes = Number.isFinite(this.fullBytes) ? 0.8 * this.fullBytes + 0.2 * bytes : bytes;
    }
    this.frames.push([now, bytes, meta.seq]);
    while (this.frames.length && now - this.frames[0][0] > MEASURE_MS) this.frames.shift();
  }

  tick(now, measuring) {
    if (!measuring) {
      this.since = null;
      this.frames.length = 0;
      return false;
    }
    if (this.since === null) this.since = now;
    while (this.frames.length && now - this.frames[0][0] > MEASURE_MS) this.frames.shift();
    if (now - this.since < MEASURE_MS) return false;
    if (!this.active) {
      if (!this.fullTooSlow()) {
        if (now - this.fullSince > PROBE_FAILED_MS) this.probed = false;
        if (now - this.fullSince > 2 * PROBE_MAX_MS) this.probeDelay = PROBE_MIN_MS;
        return false;
      }
      if (this.probed && now - this.fullSince < PROBE_FAILED_MS) {
        this.probeDelay = Math.min(PROBE_MAX_MS, this.probeDelay * 2);
      }
      this.switchTo(true, now);
      return true;
    }
    const bytesPerSecond = this.bytesPerSecond();
    const roomForTwo = bytesPerSecond >= 2 * this.fullBytes;
    const probe = now - this.activeSince >= this.probeDelay;
    if (!roomForTwo && !probe) return false;
    this.probed = !roomForTwo;
    this.switchTo(false, now);
    return true;
  }

  fullTooSlow() {
    const frames = this.frames;
    if (frames.length < 2) return true; // a live camera, asked for frames: the link holds them
    const perSecond = (frames.length * 1000) / MEASURE_MS;
    const skipped = frames[frames.length - 1][2] - frames[0][2] > frames.length - 1;
    return perSecond < 1 && skipped;
  }

  bytesPerSecond() {
    let bytes = 0;
    for (const f of this.frames) bytes += f[1];
    return (bytes * 1000) / MEASURE_MS;
  }

  switchTo(active, now) {
    this.active = active;
    this.since = now; // measure the new size afresh
    this.frames.length = 0;
    if (active) this.activeSince = now;
    else this.fullSince = now;
  }

  snapshot() {
    return {
      active: this.active,
      fullBytes: this.fullBytes,
      fps: (this.frames.length * 1000) / MEASURE_MS,
      bytesPerSecond: this.bytesPerSecond(),
      probeDelay: this.probeDelay,
    };
  }
}
