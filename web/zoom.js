/*
 * zoom.js — zoom and pan of one camera's picture: pinch, double tap, wheel, drag and keys.
 *
 * The canvas keeps the frame's full resolution as its backing store. Zoom is only where that
 * canvas sits in its clipping box — its size at zoom 1 (the frame fitted into the box, shape
 * kept) and a CSS transform (translate, then scale) — so a zoomed picture is drawn from the
 * full-resolution frame, stays sharp, costs no copy per frame, and every new frame drawn into
 * the canvas keeps the zoom. The picture never leaves the box: zoomed in, its edges stop at
 * the box's edges; smaller than the box, it is centred.
 *
 * Gestures (Pointer Events, so touch, pen and mouse alike): two fingers pinch and pan; one
 * finger or the mouse drags while zoomed in; a double tap or double click zooms in at that
 * point, or back out when zoomed; the wheel zooms around the cursor.
 *
 * Interface:
 *   new Zoom(box, canvas, {onChange})  box: the clipping element that gets the gestures;
 *                                      onChange(zoom) after every change of scale
 *   .setContentSize(width, height)     the frame's size (its shape is kept)
 *   .fit()                             the box changed size (a ResizeObserver calls it)
 *   .zoomAt(scale, x, y)               scale (clamped to 1..MAX_SCALE) around box point x, y
 *                                      (default: the box's centre)
 *   .zoomBy(factor, x, y), .panBy(dx, dy), .reset()
 *   .scale, .isZoomed
 *   .view()                            {x, y, width, height}: the part of the frame shown, in
 *                                      frame pixels
 *   .destroy()
 */

export const MAX_SCALE = 8;
const DOUBLE_TAP_SCALE = 2.5;
const DOUBLE_TAP_MS = 350;
const TAP_SLOP_PX = 12; // a finger that moved less than this tapped

export class Zoom {
  constructor(box, canvas, { onChange } = {}) {
    this.box = box;
    this.canvas = canvas;
    this.onChange = onChange || (() => {});
    this.contentWidth = canvas.width;
    this.contentHeight = canvas.height;
    this.boxWidth = 0;
    this.boxHeight = 0;
    this.baseWidth = 0; // the picture's size at scale 1
    this.baseHeight = 0;
    this.scale = 1;
    this.x = 0; // where the picture's top left corner is, in box pixels
    this.y = 0;
    this.pointers = new Map(); // pointerId -> {x, y, downAt, downX, downY}
    this.lastTap = null; // {at, x, y}
    this.pinch = null; // {distance, midX, midY}
    this.lastPointerType = "";

    this.handlers = {
      pointerdown: (e) => this.onPointerDown(e),
      pointermove: (e) => this.onPointerMove(e),
      pointerup: (e) => this.onPointerUp(e),
      pointercancel: (e) => this.onPointerUp(e, true),
      wheel: (e) => this.onWheel(e),
      dblclick: (e) => this.onDoubleClick(e),
    };
    for (const [type, handler] of Object.entries(this.handlers)) {
      box.addEventListener(type, handler, { passive: false });
    }
    this.resizeObserver =
      typeof ResizeObserver === "function" ? new ResizeObserver(() => this.fit()) : null;
    if (this.resizeObserver) this.resizeObserver.observe(box);
    else window.addEventListener("resize", (this.onResize = () => this.fit()));
    this.fit();
  }

  destroy() {
    for (const [type, handler] of Object.entries(this.handlers)) {
      this.box.removeEventListener(type, handler);
    }
    if (this.resizeObserver) this.resizeObserver.disconnect();
    else window.removeEventListener("resize", this.onResize);
  }

  get isZoomed() {
    return this.scale > 1.001;
  }

  setContentSize(width, height) {
    if (width === this.contentWidth && height === this.contentHeight) return;
    this.contentWidth = width;
    this.contentHeight = height;
    this.fit();
  }

  fit() {
    const width = this.box.clientWidth;
    const height = this.box.clientHeight;
    if (!(width > 0 && height > 0 && this.contentWidth > 0 && this.contentHeight > 0)) return;
    // The frame point at the box's centre stays there when the box changes size.
    const centreX = this.baseWidth ? (this.boxWidth / 2 - this.x) / (this.baseWidth * this.scale) : 0.5;
    const centreY = this.baseHeight
      ? (this.boxHeight / 2 - this.y) / (this.baseHeight * this.scale)
      : 0.5;
    const fitScale = Math.min(width / this.contentWidth, height / this.contentHeight);
    this.boxWidth = width;
    this.boxHeight = height;
    this.baseWidth = this.contentWidth * fitScale;
    this.baseHeight = this.contentHeight * fitScale;
    this.canvas.style.width = `${this.baseWidth}px`;
    this.canvas.style.height = `${this.baseHeight}px`;
    this.x = width / 2 - centreX * this.baseWidth * this.scale;
    this.y = height / 2 - centreY * this.baseHeight * this.scale;
    this.apply();
  }

  zoomAt(scale, x = this.boxWidth / 2, y = this.boxHeight / 2) {
    const next = Math.min(MAX_SCALE, Math.max(1, scale));
    // The frame point under (x, y) stays under it.
    this.x = x - ((x - this.x) * next) / this.scale;
    this.y = y - ((y - this.y) * next) / this.scale;
    const changed = next !== this.scale;
    this.scale = next;
    this.apply();
    if (changed) this.onChange(this);
  }

  zoomBy(factor, x, y) {
    this.zoomAt(this.scale * factor, x, y);
  }

  panBy(dx, dy) {
    this.x += dx;
    this.y += dy;
    this.apply();
  }

  reset() {
    this.zoomAt(1);
  }

  view() {
    const s = (this.baseWidth * this.scale) / this.contentWidth; // screen px per frame px
    const left = Math.max(0, -this.x / s);
    const top = Math.max(0, -this.y / s);
    return {
      x: left,
      y: top,
      width: Math.min(this.contentWidth - left, this.boxWidth / s),
      height: Math.min(this.contentHeight - top, this.boxHeight / s),
    };
  }

  apply() {
    const width = this.baseWidth * this.scale;
    const height = this.baseHeight * this.scale;
    this.x = width <= this.boxWidth ? (this.boxWidth - width) / 2 : clamp(this.x, this.boxWidth - width, 0);
    this.y =
      height <= this.boxHeight ? (this.boxHeight - height) / 2 : clamp(this.y, this.boxHeight - height, 0);
    this.canvas.style.transform = `translate(${this.x}px, ${this.y}px) scale(${this.scale})`;
    this.box.classList.toggle("zoomed", this.isZoomed);
  }

  local(event) {
    const rect = this.box.getBoundingClientRect();
    return { x: event.clientX - rect.left, y: event.clientY - rect.top };
  }

  onPointerDown(event) {
    if (event.pointerType === "mouse" && event.button !== 0) return;
    this.lastPointerType = event.pointerType;
    const p = this.local(event);
    this.pointers.set(event.pointerId, { ...p, downAt: event.timeStamp, downX: p.x, downY: p.y });
    try {
      this.box.setPointerCapture(event.pointerId);
    } catch (err) {
      // An emulated or already released pointer: the moves still arrive on the box.
    }
    if (this.pointers.size === 2) this.pinch = this.pinchState();
    event.preventDefault();
  }

  pinchState() {
    const [a, b] = [...this.pointers.values()];
    return { distance: Math.hypot(a.x - b.x, a.y - b.y), midX: (a.x + b.x) / 2, midY: (a.y + b.y) / 2 };
  }

  onPointerMove(event) {
    const pointer = this.pointers.get(event.pointerId);
    if (!pointer) return;
    const p = this.local(event);
    const dx = p.x - pointer.x;
    const dy = p.y - pointer.y;
    pointer.x = p.x;
    pointer.y = p.y;
    if (this.pointers.size >= 2 && this.pinch) {
      const now = this.pinchState();
      if (this.pinch.distance > 0) this.zoomAt((this.scale * now.distance) / this.pinch.distance, now.midX, now.midY);
      this.panBy(now.midX - this.pinch.midX, now.midY - this.pinch.midY);
      this.pinch = now;
    } else if (this.pointers.size === 1 && this.isZoomed) {
      this.panBy(dx, dy);
    }
    event.preventDefault();
  }

  onPointerUp(event, cancelled = false) {
    const pointer = this.pointers.get(event.pointerId);
    if (!pointer) return;
    this.pointers.delete(event.pointerId);
    this.pinch = this.pointers.size >= 2 ? this.pinchState() : null;
    if (cancelled || event.pointerType === "mouse" || this.pointers.size > 0) return;
    // A double tap: two short taps close together in time and place (the mouse has dblclick).
    const moved = Math.hypot(pointer.x - pointer.downX, pointer.y - pointer.downY);
    if (moved > TAP_SLOP_PX || event.timeStamp - pointer.downAt > DOUBLE_TAP_MS) {
      this.lastTap = null;
      return;
    }
    const last = this.lastTap;
    if (
      last &&
      event.timeStamp - last.at < DOUBLE_TAP_MS &&
      Math.hypot(pointer.x - last.x, pointer.y - last.y) < 3 * TAP_SLOP_PX
    ) {
      this.lastTap = null;
      this.toggleAt(pointer.x, pointer.y);
    } else {
      this.lastTap = { at: event.timeStamp, x: pointer.x, y: pointer.y };
    }
  }

  onDoubleClick(event) {
    // Browsers make a dblclick of a double tap too, which onPointerUp has handled already.
    if (this.lastPointerType !== "mouse") return;
    const p = this.local(event);
    this.toggleAt(p.x, p.y);
    event.preventDefault();
  }

  toggleAt(x, y) {
    if (this.isZoomed) this.reset();
    else this.zoomAt(DOUBLE_TAP_SCALE, x, y);
  }

  onWheel(event) {
    // Lines and pages count as 16 and 400 pixels; one notch (about 100 px) zooms by ~22%.
    const unit = event.deltaMode === 1 ? 16 : event.deltaMode === 2 ? 400 : 1;
    const p = this.local(event);
    this.zoomBy(Math.exp((-event.deltaY * unit) / 500), p.x, p.y);
    event.preventDefault();
  }
}

function clamp(value, low, high) {
  return Math.min(high, Math.max(low, value));
}
