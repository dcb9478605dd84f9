/*
 * stream.js — one camera's protocol-2 connection: credits, decoding, pause, reconnect.
 *
 * Opens the camera's WebSocket with the subprotocol "pyimagestream.v2", keeps
 * FlowControl.window requests in flight, decodes each JPEG with the decoder of decode.js
 * (createImageBitmap off the main thread where the browser has it) and hands the picture to
 * onFrame. A frame that
 * arrives while the previous one is still decoding waits; if several wait, only the newest is
 * decoded. The credit of a frame is returned once it is decoded, so a slow device gets fewer
 * frames instead of a backlog. Pausing (by the user, or while the tab is hidden) sends
 * {"type": "pause"} and no more requests; resuming sends {"type": "resume"}. When the
 * connection drops it is opened again after 0.5, 1, 2, 4, 8, then 15 s (with jitter), at once
 * when the browser reports it is back online, and a stalled connection is dropped.
 *
 * Interface:
 *   new CameraStream(camera, {onFrame, onState, onHello, onConnection, onArrival, loc, decoder})
 *     camera        camera name ("" for the server's default camera)
 *     decoder       from decode.js pickDecoder() (the default)
 *     onArrival(meta, bytes)
 *                   a frame message arrived (before decoding; bytes: the whole message)
 *     onFrame(picture, meta)    a decoded frame (ImageBitmap or HTMLImageElement); the callee
 *                               owns it and must close() or transfer it
 *     onState(state, reason)    camera state: "starting", "live", "sleeping", "offline"
 *     onHello(hello)            the server's hello message (camera list, window)
 *     onConnection(status, info)
 *                               "connecting", "open", "reconnecting" (info.delay ms,
 *                               info.attempt, info.code, info.reason), "failed" (info.reason:
 *                               will not retry) or "closed" (by close())
 *   .start()                    connect
 *   .close()                    disconnect for good
 *   .setMaxWidth(pixels)        ask for frames at most this wide (0: full size), where the
 *                               server can (its hello lists "size"); kept across reconnects
 *   .setPaused(cause, paused)   cause is any string ("user", "hidden"); requests stop while
 *                               any cause is set
 *   .paused, .pausedBy(cause)
 *   .stats(now)                 {fps, bytesPerSecond, age, time, width, height, window,
 *                               outstanding, rtt, cameraFps, queueDelay, frames, state, reason,
 *                               connection}; time: capture time of the frame shown (Unix s)
 *   .lastJpeg()                 {jpeg: Uint8Array, meta} of the frame shown last, or null
 *   .camera, .state, .reason, .connection
 */

import { pickDecoder } from "./decode.js";
import { FlowControl } from "./flow.js";
import {
  CLOSE,
  MSG_NEXT,
  MSG_PAUSE,
  MSG_RESUME,
  ProtocolError,
  sizeMessage,
  SUBPROTOCOL,
  parseControl,
  parseFrame,
  websocketUrl,
} from "./protocol.js";
import { RateMeter } from "./stats.js";

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
// No message for this long while requests are outstanding on a live camera: the connection
// is dead even if TCP has not noticed (a phone that changed networks, say).
const STALL_MS = 15_000;

function clock() {
  return performance.timeOrigin + performance.now();
}

export class CameraStream {
  constructor(camera, { onFrame, onState, onHello, onConnection, onArrival, loc, decoder } = {}) {
    this.camera = camera;
    this.decoder = decoder || pickDecoder();
    this.onFrame = onFrame || ((bitmap) => bitmap.close());
    this.onState = onState || (() => {});
    this.onHello = onHello || (() => {});
    this.onConnection = onConnection || (() => {});
    this.onArrival = onArrival || (() => {});
    this.loc = loc || window.location;
    this.ws = null;
    this.flow = new FlowControl();
    this.meter = new RateMeter(2000);
    this.pauseCauses = new Set();
    this.state = "starting";
    this.reason = "";
    this.connection = "closed";
    this.attempt = 0;
    this.retryTimer = 0;
    this.stallTimer = 0;
    this.lastMessageAt = 0;
    this.closedForGood = false;
    this.decoding = false;
    this.waiting = null; // the newest frame waiting for the decoder
    this.shown = null; // {jpeg, meta, arrivedAt} of the frame on screen
    this.frames = 0;
    this.generation = 0; // bumps per connection: late decodes of an old one are dropped
    this.pausedAt = 0;
    this.creditsFrom = 0; // no requests before this time (just after a resume)
    this.resumeTimer = 0;
    this.maxWidth = 0;
    this.canResize = false; // the server's hello listed "size"
    this.onOnline = () => this.retryNow();
    window.addEventListener("online", this.onOnline);
  }

  get paused() {
    return this.pauseCauses.size > 0;
  }

  pausedBy(cause) {
    return this.pauseCauses.has(cause);
  }

  start() {
    this.closedForGood = false;
    this.connect();
  }

  close() {
    this.closedForGood = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.resumeTimer);
    clearInterval(this.stallTimer);
    window.removeEventListener("online", this.onOnline);
    this.generation += 1;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      ws.close(CLOSE.NORMAL, "viewer closed");
    }
    this.waiting = null;
    this.setConnection("closed", {});
  }

  setPaused(cause, paused) {
    const was = this.paused;
    if (paused) this.pauseCauses.add(cause);
    else this.pauseCauses.delete(cause);
    if (!this.paused) this.retryNow(); // a tab coming back need not wait for the back-off
    if (was === this.paused || !this.isOpen()) return;
    if (this.paused) {
      this.ws.send(MSG_PAUSE);
      this.flow.dropCredits();
      this.meter.clear();
      this.pausedAt = clock();
    } else {
      this.ws.send(MSG_RESUME);
      // Frames the server sent before it read our pause may still be on the way; requests
      // sent now must not be counted as answered by them, or the server could hold more
      // than `window`. They arrive within a round trip of the pause.
      const wait = 2 * (this.flow.rtt || 0) - (clock() - this.pausedAt);
      if (wait > 0) {
        this.creditsFrom = clock() + wait;
        clearTimeout(this.resumeTimer);
        this.resumeTimer = setTimeout(() => this.topUp(), wait + 1);
      } else {
        this.topUp();
      }
    }
  }

  setMaxWidth(pixels) {
    const width = Math.max(0, Math.round(pixels) || 0);
    if (width === this.maxWidth) return;
    this.maxWidth = width;
    if (this.isOpen() && this.canResize) this.ws.send(sizeMessage(width));
  }

  isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN && this.helloSeen;
  }

  retryNow() {
    if (this.connection === "reconnecting" && !this.closedForGood) {
      clearTimeout(this.retryTimer);
      this.connect();
    }
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.generation += 1;
    const generation = this.generation;
    this.helloSeen = false;
    this.creditsFrom = 0;
    clearTimeout(this.resumeTimer);
    this.flow = new FlowControl();
    this.meter.clear();
    this.waiting = null;
    let ws;
    try {
      ws = new WebSocket(websocketUrl(this.camera, this.loc), [SUBPROTOCOL]);
    } catch (err) {
      this.fail(`cannot open the connection: ${err.message}`);
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    const openingAt = performance.now();
    this.openingAt = openingAt;
    this.handshakeMs = NaN;
    this.setConnection(this.attempt === 0 ? "connecting" : "reconnecting", {
      attempt: this.attempt,
      delay: 0,
    });
    ws.onmessage = (event) => {
      if (generation !== this.generation) return;
      this.lastMessageAt = clock();
      try {
        if (typeof event.data === "string") this.handleControl(parseControl(event.data));
        else this.handleFrame(parseFrame(event.data), event.data.byteLength);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        console.warn(`pyimagestream: ${this.camera}: ${err.message}; reconnecting`);
        ws.close(CLOSE.NORMAL, "protocol error"); // browsers may only send 1000 or 3000-4999
      }
    };
    ws.onclose = (event) => {
      if (generation !== this.generation) return;
      this.ws = null;
      clearInterval(this.stallTimer);
      this.scheduleReconnect(event.code, event.reason);
    };
    ws.onopen = () => {
      this.handshakeMs = performance.now() - openingAt;
      if (ws.protocol !== SUBPROTOCOL) {
        this.fail("the server does not speak protocol 2 (pyimagestream.v2)");
        ws.close(CLOSE.NORMAL);
      }
    };
    clearInterval(this.stallTimer);
    this.stallTimer = setInterval(() => this.checkStall(ws), STALL_MS / 3);
  }

  checkStall(ws) {
    if (ws !== this.ws) return;
    if (!this.helloSeen && performance.now() - this.openingAt > STALL_MS) {
      // A handshake that hangs (a proxy swallowing it, say): give up on it and retry.
      ws.close();
      return;
    }
    if (this.paused || this.state !== "live") return;
    if (this.flow.outstanding > 0 && clock() - this.lastMessageAt > STALL_MS) {
      console.info(`pyimagestream: ${this.camera}: no frame for ${STALL_MS / 1000} s`);
      ws.close(CLOSE.NORMAL, "stalled");
    }
  }

  scheduleReconnect(code, reason) {
    if (this.closedForGood) return;
    if (code === CLOSE.UNKNOWN_CAMERA) {
      this.fail(reason || `there is no camera named ${this.camera}`);
      return;
    }
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    const delay = Math.round(base * (0.8 + 0.4 * Math.random()));
    this.attempt += 1;
    this.setConnection("reconnecting", { attempt: this.attempt, delay, code, reason });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  fail(reason) {
    this.closedForGood = true;
    clearInterval(this.stallTimer);
    this.setConnection("failed", { reason });
  }

  setConnection(status, info) {
    this.connection = status;
    this.onConnection(status, info);
  }

  handleControl(msg) {
    switch (msg.type) {
      case "hello":
        this.helloSeen = true;
        this.attempt = 0;
        this.flow = new FlowControl(msg.window || 1, msg.state === "live", this.handshakeMs);
        this.canResize = Array.isArray(msg.features) && msg.features.includes("size");
        if (this.canResize && this.maxWidth > 0) this.ws.send(sizeMessage(this.maxWidth));
        this.setConnection("open", {});
        this.onHello(msg);
        this.setState(msg.state, msg.reason);
        if (this.paused) this.ws.send(MSG_PAUSE);
        else this.topUp();
        break;
      case "state":
        this.setState(msg.state, msg.reason);
        break;
      case "error":
        console.warn(`pyimagestream: ${this.camera}: server says: ${msg.message}`);
        break;
      default:
        break; // newer servers may say more; ignore what we do not know
    }
  }

  setState(state, reason) {
    this.state = state || "starting";
    this.reason = reason || "";
    this.onState(this.state, this.reason);
  }

  handleFrame(frame, bytes) {
    const now = clock();
    frame.arrivedAt = now;
    frame.age = this.flow.frameArrived(frame.meta, now, bytes);
    this.meter.add(now, bytes);
    this.onArrival(frame.meta, bytes);
    // A frame still waiting for the decoder is never shown: the newer one takes its place.
    this.waiting = frame;
    this.decodeNext();
  }

  async decodeNext() {
    if (this.decoding || !this.waiting) {
      this.topUp();
      return;
    }
    const frame = this.waiting;
    this.waiting = null;
    this.decoding = true;
    const generation = this.generation;
    let bitmap = null;
    try {
      bitmap = await this.decoder.decode(frame.jpeg);
    } catch (err) {
      console.warn(`pyimagestream: ${this.camera}: frame ${frame.meta.seq} did not decode`);
    }
    this.decoding = false;
    if (bitmap) {
      if (generation === this.generation) {
        this.frames += 1;
        this.shown = frame;
        this.onFrame(bitmap, frame.meta);
      } else {
        bitmap.close();
      }
    }
    this.decodeNext();
  }

  topUp() {
    if (!this.isOpen() || this.paused || clock() < this.creditsFrom) return;
    const flow = this.flow;
    // Frames received but not yet decoded hold their credit: that is the back-pressure.
    const busy = (this.decoding ? 1 : 0) + (this.waiting ? 1 : 0);
    while (flow.outstanding + busy < flow.window) {
      this.ws.send(MSG_NEXT);
      flow.creditSent(clock());
    }
  }

  lastJpeg() {
    return this.shown ? { jpeg: this.shown.jpeg, meta: this.shown.meta } : null;
  }

  stats(now = clock()) {
    const rate = this.meter.rate(now);
    const shown = this.shown;
    const flow = this.flow.snapshot();
    return {
      fps: rate.perSecond,
      bytesPerSecond: rate.bytesPerSecond,
      age: shown ? this.flow.ageOf(shown.meta, shown.arrivedAt, now) : NaN,
      time: shown ? shown.meta.time : NaN,
      width: shown ? shown.meta.width : 0,
      height: shown ? shown.meta.height : 0,
      frames: this.frames,
      ...flow,
      state: this.state,
      reason: this.reason,
      connection: this.connection,
      paused: this.paused,
    };
  }
}
