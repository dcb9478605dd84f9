/*
 * flow.js — how many frame requests ("credits") to keep in flight. Pure logic, no I/O, no DOM.
 *
 * The server sends one frame per credit, always the newest one. One credit at a time costs a
 * full round trip per frame; too many credits on a slow link let frames queue in the network,
 * so the picture lags. The window is sized from three measurements, all taken from frames:
 *
 *   rtt         base round trip: min(receive - server send) over the last minute +
 *               min(server send - credit sent) over the last 10 s. The server's clock
 *               offset cancels out of the sum.
 *               A credit the server had to hold until a new frame was captured would
 *               inflate the second term, so it only counts frames the server sent at once:
 *               those after a gap in seq (a frame was skipped, so a newer one was waiting)
 *               and the first one of a connection to a live camera. Without such frames
 *               (every captured frame arrives) the last good value stays, lowered by any
 *               held credit that came back faster (held credits only overstate); before the
 *               first, the WebSocket handshake's time stands in (TCP and HTTP: two round
 *               trips).
 *   cameraFps   from the frames' seq and capture time: seq grows by one per captured frame.
 *   queueDelay  receive - server send, above its minimum over the last minute (the clock
 *               offset cancels): how long frames now wait in the network. It grows as soon
 *               as the link is full.
 *
 * Window = min(needed, congestion window, server's limit), where needed =
 * ceil(cameraFps * rtt * 1.25) + 1 credits carry every captured frame across the round trip
 * of a fast link. The congestion window grows by one per frame while queueDelay stays low and
 * halves when queueDelay rises above max(40 ms, rtt / 3) — one frame waiting behind another on
 * a slow link — after which it waits before probing upwards again, longer after each probe
 * that failed. On a slow link that leaves one or two credits in flight and at most a short
 * queue (under a third of the round trip): a frame arrives about its own transfer time plus
 * half a round trip after it was captured, never behind a backlog.
 *
 * Times are milliseconds on one client clock (performance.timeOrigin + performance.now());
 * server times are milliseconds on the server's clock.
 *
 * Interface:
 *   new FlowControl(maxWindow, cameraLive, handshakeMs)
 *                                maxWindow: the `window` of the server's hello; cameraLive:
 *                                its state is "live" (the first frame comes at once);
 *                                handshakeMs: from new WebSocket() to its open event
 *   .window                      credits to keep outstanding now (1..maxWindow)
 *   .outstanding                 credits sent and not yet answered
 *   .creditSent(now)             call when sending {"type": "next"}
 *   .dropCredits()               call when sending {"type": "pause"}: the server forgets them
 *   .frameArrived(meta, now)     call for each frame message; returns the frame's age on
 *                                arrival in ms (capture to receive)
 *   .ageOf(meta, arrivedAt, now) age in ms, at `now`, of a frame that arrived at arrivedAt
 *   .snapshot()                  {window, outstanding, rtt, cameraFps, queueDelay} for display
 */

const WINDOW_MS = 10_000;
const BASE_MS = 60_000;
const BUCKET_MS = 1_000;
const PROBE_MIN_MS = 2_000;
const PROBE_MAX_MS = 30_000;

/** Minimum of a value over the last spanMs, kept as 1 s buckets: cheap per sample. */
class WindowedMin {
  constructor(spanMs = WINDOW_MS) {
    this.spanMs = spanMs;
    this.buckets = [];
  }
  add(value, now) {
    const last = this.buckets[this.buckets.length - 1];
    if (last && now - last.start < BUCKET_MS) {
      if (value < last.min) last.min = value;
    } else {
      this.buckets.push({ start: now, min: value });
    }
    while (this.buckets.length && now - this.buckets[0].start > this.spanMs) this.buckets.shift();
  }
  get value() {
    let min = Infinity;
    for (const b of this.buckets) if (b.min < min) min = b.min;
    return min;
  }
}

export class FlowControl {
  constructor(maxWindow = 8, cameraLive = false, handshakeMs = NaN) {
    this.maxWindow = Math.max(1, maxWindow | 0);
    this.lastSeq = cameraLive ? -Infinity : Infinity; // -Infinity: a gap before the first
    this.credits = []; // send times of the outstanding credits, oldest first
    // receive - server send: one-way delay + clock offset. Over a minute, so that a queue
    // that stands for a while is still seen as one (clocks drift far less than that).
    this.recvMinusSend = new WindowedMin(BASE_MS);
    this.sendMinusCredit = new WindowedMin(); // server send - credit: one-way delay - offset
    this.lastSendMinusCredit = Infinity; // kept when no fresh sample qualifies
    this.anySendMinusCredit = new WindowedMin(); // the same over held credits too: an upper bound
    this.recentQueue = []; // last three queue delays
    this.fpsFrames = []; // [seq, capture time] of recent frames
    this.cwnd = 1;
    this.ignoreFrames = 0;
    this.probeAfter = 0; // no upward probe before this time
    this.probeDelay = PROBE_MIN_MS;
    this.lastCutAt = -Infinity;
    this.lastIncreaseAt = -Infinity;
    this.holdIncrease = 0; // frames to see before the next step up
    this.rtt = handshakeMs / 2;
    this.cameraFps = NaN;
    this.queueDelay = 0;
  }

  get outstanding() {
    return this.credits.length;
  }

  get needed() {
    if (!(this.cameraFps > 0) || !(this.rtt >= 0)) return 2;
    return Math.ceil((this.cameraFps * this.rtt * 1.25) / 1000) + 1;
  }

  get window() {
    return Math.max(1, Math.min(this.maxWindow, this.needed, Math.floor(this.cwnd)));
  }

  creditSent(now) {
    this.credits.push(now);
  }

  dropCredits() {
    this.credits.length = 0;
    this.ignoreFrames = 0;
  }

  frameArrived(meta, now) {
    const creditAt = this.credits.shift(); // undefined: a frame sent before our pause
    const captured = meta.time * 1000;
    const ageMs = (meta.age || 0) * 1000;
    const sent = captured + ageMs;

    this.recvMinusSend.add(now - sent, now);
    if (creditAt !== undefined) {
      this.anySendMinusCredit.add(sent - creditAt, now);
      if (meta.seq - this.lastSeq >= 2) {
        // A newer frame was waiting when the credit arrived: it was not held.
        this.sendMinusCredit.add(sent - creditAt, now);
      }
    }
    this.lastSeq = meta.seq;
    const sc = this.sendMinusCredit.value;
    if (Number.isFinite(sc)) this.lastSendMinusCredit = sc;
    if (Number.isFinite(this.lastSendMinusCredit)) {
      // Held credits only ever overstate the delay, so they can still bring a clean value
      // that came from a moment of load back down; they cannot raise it.
      const oneWay = Math.min(this.lastSendMinusCredit, this.anySendMinusCredit.value);
      this.rtt = Math.max(0, this.recvMinusSend.value + oneWay);
    }

    this.updateCameraFps(meta.seq, captured);

    const queue = now - sent - this.recvMinusSend.value;
    this.recentQueue.push(queue);
    if (this.recentQueue.length > 3) this.recentQueue.shift();
    this.queueDelay = median(this.recentQueue);
    this.adjust(now);

    return this.ageOf(meta, now, now);
  }

  adjust(now) {
    const rtt = Number.isFinite(this.rtt) ? this.rtt : 0;
    const limit = Math.max(40, rtt / 3);
    if (this.ignoreFrames > 0) {
      // Frames already in flight when the window was cut still carry the old queue.
      this.ignoreFrames -= 1;
    } else if (this.queueDelay > limit) {
      if (now - this.lastIncreaseAt < 2 * rtt + 1000) {
        // The last step up filled the link: try again later, and later after each failure.
        this.probeDelay = Math.min(PROBE_MAX_MS, this.probeDelay * 2);
      }
      this.cwnd = Math.max(1, Math.floor(this.window / 2));
      this.ignoreFrames = this.outstanding;
      this.lastCutAt = now;
      this.probeAfter = now + this.probeDelay;
    } else if (this.queueDelay < limit / 2) {
      if (this.holdIncrease > 0) {
        this.holdIncrease -= 1;
      } else if (now >= this.probeAfter && this.cwnd < this.needed) {
        this.cwnd += 1;
        this.lastIncreaseAt = now;
        // Once the link has been found full, one step at a time: let each show its effect
        // (the frames now in flight, and two more) before the next.
        if (this.lastCutAt > -Infinity) this.holdIncrease = this.outstanding + 2;
      }
      if (now - this.lastCutAt > PROBE_MAX_MS) this.probeDelay = PROBE_MIN_MS;
    }
    this.cwnd = Math.min(this.cwnd, Math.max(this.needed, 1), this.maxWindow);
  }

  updateCameraFps(seq, captured) {
    const frames = this.fpsFrames;
    const last = frames[frames.length - 1];
    // seq restarts or the camera restarted after a pause: measure afresh.
    if (last && (seq <= last[0] || captured - last[1] > 5_000)) frames.length = 0;
    frames.push([seq, captured]);
    while (frames.length > 2 && captured - frames[0][1] > 3_000) frames.shift();
    const first = frames[0];
    if (frames.length >= 3 && captured > first[1]) {
      this.cameraFps = ((seq - first[0]) * 1000) / (captured - first[1]);
    }
  }

  ageOf(meta, arrivedAt, now) {
    const captured = meta.time * 1000;
    const minDelay = this.recvMinusSend.value;
    // With clocks in step (NTP), the smallest one-way delay lies within one round trip and
    // the capture time can be used directly.
    if (minDelay > -20 && minDelay < (this.rtt || 0) + 20) return now - captured;
    // Otherwise: server-side age + queueing + half the base round trip, all offset-free.
    // On a slow link that understates by up to half a frame's transfer time, which the base
    // round trip holds once but the way down holds whole.
    const sent = captured + (meta.age || 0) * 1000;
    return (
      (meta.age || 0) * 1000 +
      (arrivedAt - sent - minDelay) +
      (this.rtt || 0) / 2 +
      (now - arrivedAt)
    );
  }

  snapshot() {
    return {
      window: this.window,
      outstanding: this.outstanding,
      rtt: this.rtt,
      cameraFps: this.cameraFps,
      queueDelay: this.queueDelay,
    };
  }
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}
