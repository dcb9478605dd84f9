/*
 * flow.js — how many frame requests ("credits") to keep in flight. Pure logic, no I/O, no DOM.
 *
 * The server sends one frame per credit, always the newest one. One credit at a time costs a
 * full round trip per frame; too many credits on a slow link let frames queue in the network,
 * so the picture lags. The window is sized from four measurements, all taken from frames:
 *
 *   rtt         base round trip: min(receive - server send) over the last minute +
 *               min(server send - credit sent - held) over the last 10 s. The server's
 *               clock offset cancels out of the sum. `held` (the frame's metadata) is how
 *               long the server kept the credit before sending: waiting for a new frame, or
 *               at its in-flight bound while the link was full (a window larger than the
 *               path needs keeps its extra credits there, seconds each on a slow link).
 *               From a server that does not send it: a credit held until a new frame was
 *               captured would inflate the second term, so it only counts frames sent at once:
 *               those after a gap in seq (a frame was skipped, so a newer one was waiting)
 *               and the first one of a connection to a live camera. Without such frames
 *               (every captured frame arrives) the last good value stays, lowered by any
 *               held credit that came back faster (held credits only overstate); before the
 *               first, the WebSocket handshake's time stands in (TCP and HTTP: two round
 *               trips).
 *   cameraFps   from the frames' seq and capture time: seq grows by one per captured frame.
 *   linkRate    bytes per ms the link carries: a frame that queued behind the one before it
 *               arrives one transfer time after it, so bytes / (gap between arrivals) is
 *               the link's rate for such frames and less for the others; the estimate is a
 *               high percentile of the last samples (a client that read two frames at once
 *               makes a few too high). transfer = the recent median frame size / linkRate.
 *   queueDelay  receive - server send, above its minimum over the last minute (the clock
 *               offset cancels) and less the difference between this frame's transfer and
 *               the minimum's: how long the frame waited behind others in the network.
 *
 * Window = min(needed, congestion window, server's limit), where needed =
 * ceil(cameraFps * (base rtt + transfer) * 1.25) + 1 credits carry every captured frame
 * across the round trip of a fast link (base rtt: rtt without the transfer of the frame it
 * was measured with). Once the link is full, every credit more adds one transfer time of
 * queue and no frames, so the congestion window grows by one (then waits for the frames in
 * flight to show the effect) only while queueDelay is under g = max(10 ms, transfer / 6):
 * no frame is waiting yet. It shrinks by one when queueDelay passes
 * max(40 ms, transfer + max(20 ms, g))
 * — a whole frame waiting — in window + 1 of the window's last window + 4 frames (a stall
 * of the path delays no more than the frames then in flight), and the next step up after a
 * shrink waits,
 * longer after each step that had to be undone. On a slow link that keeps the link busy with
 * at most about one frame waiting: 2 Mbit/s, 100 ms and 75 KB frames (300 ms each) settle at
 * two credits, 10 Mbit/s (60 ms each) at four.
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
 *   .frameArrived(meta, now, bytes)  call for each frame message (bytes: its size, for the
 *                                link's rate; without it the transfer time counts as 0);
 *                                returns the frame's age on arrival in ms (capture to receive)
 *   .ageOf(meta, arrivedAt, now) age in ms, at `now`, of a frame that arrived at arrivedAt
 *   .snapshot()                  {window, outstanding, rtt, cameraFps, queueDelay, transfer}
 *                                for display
 */

const WINDOW_MS = 10_000;
const BASE_MS = 60_000;
const BUCKET_MS = 1_000;
const PROBE_MIN_MS = 2_000;
const PROBE_MAX_MS = 30_000;
const RATE_SAMPLES = 16;

/** Minimum of a value over the last spanMs, kept as 1 s buckets: cheap per sample. */
class WindowedMin {
  constructor(spanMs = WINDOW_MS) {
    this.spanMs = spanMs;
    this.buckets = [];
  }
  /** tag: what goes with the value (kept for the minimum, see .tag). */
  add(value, now, tag = 0) {
    const last = this.buckets[this.buckets.length - 1];
    if (last && now - last.start < BUCKET_MS) {
      if (value < last.min) {
        last.min = value;
        last.tag = tag;
      }
    } else {
      this.buckets.push({ start: now, min: value, tag });
    }
    while (this.buckets.length && now - this.buckets[0].start > this.spanMs) this.buckets.shift();
  }
  get value() {
    return this.smallest().min;
  }
  get tag() {
    return this.smallest().tag;
  }
  smallest() {
    let best = { min: Infinity, tag: 0 };
    for (const b of this.buckets) if (b.min < best.min) best = b;
    return best;
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
    this.recentQueue = []; // last three queue delays since the window last changed
    this.overMark = []; // of this window's last frames: whether each waited past the shrink mark
    this.fpsFrames = []; // [seq, capture time] of recent frames
    this.cwnd = 1;
    // The window last changed at this time: frames whose credit went before it show the old
    // window's queue, and are not judged.
    this.changedAt = -Infinity;
    this.probeAfter = 0; // no upward probe before this time
    this.probeDelay = PROBE_MIN_MS;
    this.lastCutAt = -Infinity;
    this.lastIncreaseAt = -Infinity;
    this.rtt = handshakeMs / 2;
    this.cameraFps = NaN;
    this.queueDelay = 0;
    this.lastArrivalAt = NaN; // for the link's rate; NaN after a pause
    this.rateSamples = []; // bytes / ms of the last frames
    this.sizes = []; // bytes of the last frames
    this.linkRate = NaN; // bytes / ms
  }

  /** A typical frame's time on the link, ms (0 while unknown). */
  get transfer() {
    if (!(this.linkRate > 0) || !this.sizes.length) return 0;
    return median(this.sizes) / this.linkRate;
  }

  /** The round trip without the transfer of the frame it was measured with. */
  get baseRtt() {
    const rtt = Number.isFinite(this.rtt) ? this.rtt : 0;
    const own = this.linkRate > 0 ? this.recvMinusSend.tag / this.linkRate : 0;
    return Math.max(0, rtt - own);
  }

  get outstanding() {
    return this.credits.length;
  }

  get needed() {
    if (!(this.cameraFps > 0) || !(this.rtt >= 0)) return 2;
    return Math.ceil((this.cameraFps * (this.baseRtt + this.transfer) * 1.25) / 1000) + 1;
  }

  get window() {
    return Math.max(1, Math.min(this.maxWindow, this.needed, Math.floor(this.cwnd)));
  }

  creditSent(now) {
    this.credits.push(now);
  }

  dropCredits() {
    this.credits.length = 0;
    this.lastArrivalAt = NaN;
  }

  frameArrived(meta, now, bytes = 0) {
    const creditAt = this.credits.shift(); // undefined: a frame sent before our pause
    const captured = meta.time * 1000;
    const ageMs = (meta.age || 0) * 1000;
    const sent = captured + ageMs;

    this.recvMinusSend.add(now - sent, now, bytes);
    this.updateLinkRate(bytes, now);
    const held = (meta.held ?? NaN) * 1000; // NaN: a server that does not say
    if (creditAt !== undefined && held >= 0) {
      // The server says how long it held the credit (for a frame, at its send gate): what
      // remains is the way up, from every frame.
      this.anySendMinusCredit.add(sent - creditAt - held, now);
      this.sendMinusCredit.add(sent - creditAt - held, now);
    } else if (creditAt !== undefined) {
      this.anySendMinusCredit.add(sent - creditAt, now);
      if (meta.seq - this.lastSeq >= 2) {
        // A newer frame was waiting when the credit arrived: it was not held (unless the
        // server's gate held it, and skipped frames meanwhile: only "held" tells).
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

    // Less this frame's own extra transfer over the minimum's: waiting time only.
    const extra = this.linkRate > 0 ? (bytes - this.recvMinusSend.tag) / this.linkRate : 0;
    const queue = now - sent - this.recvMinusSend.value - extra;
    if (creditAt !== undefined && creditAt >= this.changedAt) {
      this.recentQueue.push(queue);
      if (this.recentQueue.length > 3) this.recentQueue.shift();
      this.queueDelay = median(this.recentQueue);
      this.overMark.push(this.queueDelay > this.shrinkAbove);
      if (this.overMark.length > this.maxWindow + 4) this.overMark.shift();
      // Three frames of the present window, so that one late frame decides nothing.
      if (this.recentQueue.length === 3) this.adjust(now);
    }

    return this.ageOf(meta, now, now);
  }

  adjust(now) {
    // Past the window that fills the link, each credit more adds one transfer of queue and
    // no frames: grow only while (almost) nothing waits, shrink once a whole frame does
    // (with one credit less the link stays full). The margins are for measurement noise;
    // the gap between the two keeps a step up from being undone by the next check. The
    // shrink margin is one g (at least 20 ms of noise), not 2g: with transfer + 2g, a
    // window one too large (one frame always waiting, its delay a little under transfer +
    // 2g) stayed, as in Chromium's throttle test (window 3 at 2 Mbit/s: median age 600 ms
    // against 380 at window 2). On fast links (g = 10 ms) the margin stays 20 ms.
    const growBelow = this.growBelow;
    // A window too large keeps a frame waiting in most frames it brings; a stall of the path
    // (a busy host, a retransmission) delays only the frames then in flight, at most one
    // window's worth, and the window's credits bring the queue back to what it was. So the
    // cut waits until window + 1 of the last window + 4 frames waited past the mark (by the
    // median of three, which stretches a stall by a frame or two). Cutting at once,
    // bench-link's 10 Mbit/s link went from window 4 down to 1 or 2 on such stalls (queue
    // 90-180 ms for a moment over a standing 50-60 ms at window 4), where the window's own
    // frames, bunched, kept the growth mark out of reach: 8.8 and 12.8 fps against fixed
    // window 4's 16.0 (run 4).
    // (The window may also have been lowered below by `needed`, without a setWindow.)
    const recent = this.overMark.slice(-(this.window + 4));
    const over = recent.filter(Boolean).length;
    if (this.queueDelay > this.shrinkAbove && recent.length === this.window + 4 && over > this.window) {
      if (now - this.lastIncreaseAt < 2 * (this.rtt || 0) + 1000) {
        // The last step up filled the link: try again later, and later after each failure.
        this.probeDelay = Math.min(PROBE_MAX_MS, this.probeDelay * 2);
      }
      this.setWindow(Math.max(1, this.window - 1), now);
      this.lastCutAt = now;
      this.probeAfter = now + this.probeDelay;
    } else if (this.queueDelay < growBelow) {
      if (now >= this.probeAfter && this.cwnd < this.needed) {
        this.setWindow(this.cwnd + 1, now);
        this.lastIncreaseAt = now;
      }
      if (now - this.lastCutAt > PROBE_MAX_MS) this.probeDelay = PROBE_MIN_MS;
    }
    this.cwnd = Math.min(this.cwnd, Math.max(this.needed, 1), this.maxWindow);
  }

  /** Below this queue delay no frame waits yet: the window may grow. */
  get growBelow() {
    return Math.max(10, this.transfer / 6);
  }

  /** Past this queue delay a whole frame waits: the window is one too large. */
  get shrinkAbove() {
    return Math.max(40, this.transfer + Math.max(20, this.growBelow));
  }

  /** One step at a time: the next waits for frames requested with the new window. */
  setWindow(cwnd, now) {
    this.cwnd = cwnd;
    this.changedAt = now;
    this.recentQueue.length = 0;
    this.overMark.length = 0;
  }

  updateLinkRate(bytes, now) {
    const gap = now - this.lastArrivalAt;
    this.lastArrivalAt = now;
    if (!(bytes > 0)) return;
    this.sizes.push(bytes);
    if (this.sizes.length > RATE_SAMPLES) this.sizes.shift();
    if (!(gap > 0)) return;
    this.rateSamples.push(bytes / gap);
    if (this.rateSamples.length > RATE_SAMPLES) this.rateSamples.shift();
    // The third largest: a gap is never shorter than the frame's transfer on the link, but a
    // client that was busy and read two frames at once makes one too short now and then.
    const sorted = [...this.rateSamples].sort((a, b) => b - a);
    this.linkRate = sorted[Math.min(2, sorted.length - 1)];
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
      transfer: this.transfer,
    };
  }
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}
