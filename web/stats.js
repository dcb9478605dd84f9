/*
 * stats.js — rates over a sliding window, for the overlay. Pure logic, no I/O, no DOM.
 *
 * Interface:
 *   new RateMeter(spanMs = 2000)
 *   .add(now, bytes)     one event (a frame) of `bytes` bytes at time `now` (ms)
 *   .rate(now)           {perSecond, bytesPerSecond} over the last spanMs
 *   .clear()
 */

export class RateMeter {
  constructor(spanMs = 2000) {
    this.spanMs = spanMs;
    this.events = []; // [time, bytes], oldest first
    this.head = 0; // index of the oldest event still in the span
    this.bytes = 0; // bytes of the events from head on
  }

  add(now, bytes) {
    this.events.push([now, bytes]);
    this.bytes += bytes;
    this.expire(now);
  }

  expire(now) {
    const events = this.events;
    while (this.head < events.length && now - events[this.head][0] > this.spanMs) {
      this.bytes -= events[this.head][1];
      this.head += 1;
    }
    // Compact now and then instead of shifting per event.
    if (this.head > 256 && this.head * 2 > events.length) {
      this.events = events.slice(this.head);
      this.head = 0;
    }
  }

  rate(now) {
    this.expire(now);
    const count = this.events.length - this.head;
    if (count === 0) return { perSecond: 0, bytesPerSecond: 0 };
    // Over the whole span once it is full; over the time since the first event before that,
    // so the numbers are right a moment after a start.
    const first = this.events[this.head][0];
    const span = Math.max(Math.min(this.spanMs, now - first + 1), 250);
    return {
      perSecond: (count * 1000) / span,
      bytesPerSecond: (this.bytes * 1000) / span,
    };
  }

  clear() {
    this.events = [];
    this.head = 0;
    this.bytes = 0;
  }
}
