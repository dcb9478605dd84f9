/*
 * view.js — one camera on the page: its picture, a plain-words status, the statistics overlay.
 *
 * Draws decoded ImageBitmaps into a canvas through the "bitmaprenderer" context (the bitmap
 * is handed over, not copied, and so is freed with the next one), or, where the browser
 * decodes into <img> elements instead (decode.js), through a "2d" context. The canvas always
 * holds the frame at full resolution; a full-size view zooms and pans it (zoom.js), and
 * new frames keep the zoom. Its caption says the camera's state and the frame's capture
 * time, and "data saver" while the automatic data saver has made its frames smaller (a
 * slow link). Whenever the picture is not
 * live — connecting, reconnecting, paused, camera starting, sleeping or offline — a status
 * line over it says so and the last frame is dimmed, so a frozen picture is never shown
 * without comment.
 *
 * Interface:
 *   new CameraView(camera, {compact, bitmaps, onZoom})
 *                            compact: a grid tile (smaller text, no zoom); bitmaps: frames
 *                            come as ImageBitmaps (default true); onZoom(zoom): the zoom of a
 *                            full-size view changed
 *   .element                 the <figure>, to be placed in the page
 *   .zoom                    the Zoom of a full-size view (null for a tile)
 *   .showFrame(picture, meta) draw a frame (takes ownership of the ImageBitmap or image)
 *   .update(stats)           status line, badge, aria-label and data-* attributes from
 *                            CameraStream.stats(); the overlay too when it is visible
 *   .setSize(width, height)  reserve the picture's shape before the first frame
 *   .canvas
 *   .destroy()               the view left the page
 */

import { Zoom } from "./zoom.js";

const STATE_WORDS = {
  starting: "starting",
  live: "live",
  sleeping: "sleeping",
  offline: "offline",
};

export function describe(stats) {
  switch (stats.connection) {
    case "failed":
      return `Cannot show this camera: ${stats.failReason || "the server refused"}`;
    case "connecting":
      return "Connecting…";
    case "reconnecting":
      return stats.retryIn > 0
        ? `Connection lost — reconnecting in ${Math.ceil(stats.retryIn / 1000)} s (attempt ${stats.attempt})…`
        : "Connection lost — reconnecting…";
    case "closed":
      return "Disconnected";
    default:
      break;
  }
  if (stats.pausedByUser) {
    return stats.state === "sleeping" ? "Paused — the camera is sleeping" : "Paused";
  }
  if (stats.paused) return "Paused while this tab is hidden";
  switch (stats.state) {
    case "starting":
      return "Camera starting…";
    case "sleeping":
      return "Camera sleeping — waking it up…";
    case "offline":
      return `Camera offline: ${stats.reason || "no reason given"}`;
    default:
      return stats.frames === 0 ? "Waiting for the first frame…" : "";
  }
}

function clockTime(unixSeconds) {
  if (!Number.isFinite(unixSeconds)) return "";
  const d = new Date(unixSeconds * 1000);
  const two = (n) => String(n).padStart(2, "0");
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

function fmt(value, digits = 0) {
  return Number.isFinite(value) ? value.toFixed(digits) : "–";
}

export class CameraView {
  constructor(camera, { compact = false, bitmaps = true, onZoom } = {}) {
    this.camera = camera;
    const figure = document.createElement("figure");
    figure.className = compact ? "camera compact" : "camera";
    figure.dataset.camera = camera;

    const picture = document.createElement("div");
    picture.className = "picture";
    const canvas = document.createElement("canvas");
    canvas.setAttribute("role", "img");
    canvas.width = 1280;
    canvas.height = 720;
    this.canvas = canvas;
    this.context = bitmaps ? canvas.getContext("bitmaprenderer") : null;
    this.context2d = this.context ? null : canvas.getContext("2d");

    const status = document.createElement("p");
    status.className = "status";
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    this.status = status;

    const overlay = document.createElement("dl");
    overlay.className = "overlay";
    overlay.setAttribute("aria-label", `Statistics of camera ${camera}`);
    this.fields = {};
    for (const [key, label] of [
      ["fps", "fps"],
      ["age", "age"],
      ["rate", "kB/s"],
      ["size", "size"],
      ["window", "window"],
      ["state", "state"],
    ]) {
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.dataset.field = key;
      dd.textContent = "–";
      overlay.append(dt, dd);
      this.fields[key] = dd;
    }
    this.overlay = overlay;

    picture.append(canvas, status, overlay);

    const caption = document.createElement("figcaption");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = camera;
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "starting";
    this.badge = badge;
    const when = document.createElement("time");
    when.className = "when";
    when.title = "Capture time of the frame shown";
    this.when = when;
    const saving = document.createElement("span");
    saving.className = "saving";
    saving.textContent = "data saver";
    saving.title = "The link cannot carry one full picture a second: smaller pictures for now";
    saving.hidden = true;
    this.saving = saving;
    caption.append(name, " ", badge, " ", saving, " ", when);

    figure.append(picture, caption);
    this.element = figure;
    this.zoom = compact ? null : new Zoom(picture, canvas, { onChange: onZoom });
    this.lastText = null;
    this.update({ connection: "connecting", state: "starting", frames: 0 });
  }

  setSize(width, height) {
    if (width > 0 && height > 0 && (this.canvas.width !== width || this.canvas.height !== height)) {
      this.canvas.width = width;
      this.canvas.height = height;
      this.element.style.setProperty("--aspect", `${width} / ${height}`);
      if (this.zoom) this.zoom.setContentSize(width, height);
    }
  }

  destroy() {
    if (this.zoom) this.zoom.destroy();
  }

  showFrame(bitmap, meta) {
    this.setSize(bitmap.naturalWidth || bitmap.width, bitmap.naturalHeight || bitmap.height);
    if (this.context) {
      this.context.transferFromImageBitmap(bitmap); // takes the bitmap: nothing to close
    } else {
      this.context2d.drawImage(bitmap, 0, 0);
      bitmap.close();
    }
    this.element.dataset.seq = String(meta.seq);
  }

  update(stats) {
    const text = describe(stats);
    if (text !== this.lastText) {
      this.lastText = text;
      this.status.textContent = text;
      this.status.hidden = text === "";
      this.element.classList.toggle("stale", text !== "");
    }
    const state = STATE_WORDS[stats.state] || stats.state;
    const shown = stats.connection === "open" ? (stats.paused ? "paused" : state) : stats.connection;
    if (this.badge.textContent !== shown) this.badge.textContent = shown;
    const when = clockTime(stats.time);
    if (this.when.textContent !== when) {
      this.when.textContent = when;
      if (Number.isFinite(stats.time)) this.when.dateTime = new Date(stats.time * 1000).toISOString();
    }
    const label =
      text === ""
        ? `Live picture from camera ${this.camera}`
        : `Camera ${this.camera}: ${text}`;
    if (this.canvas.getAttribute("aria-label") !== label) this.canvas.setAttribute("aria-label", label);

    const data = this.element.dataset;
    data.state = stats.state;
    data.connection = stats.connection;
    data.paused = String(Boolean(stats.paused));
    data.frames = String(stats.frames);
    data.saver = stats.autoSaver ? "auto" : "";
    if (this.saving.hidden === Boolean(stats.autoSaver)) this.saving.hidden = !stats.autoSaver;

    if (this.overlay.offsetParent === null) return; // hidden: skip the text updates
    const f = this.fields;
    f.fps.textContent = fmt(stats.fps, 1);
    f.age.textContent = Number.isFinite(stats.age) ? `${fmt(stats.age)} ms` : "–";
    f.rate.textContent = fmt((stats.bytesPerSecond || 0) / 1000);
    f.size.textContent = stats.width ? `${stats.width}×${stats.height}` : "–";
    f.window.textContent = Number.isFinite(stats.rtt)
      ? `${stats.window} (rtt ${fmt(stats.rtt)} ms)`
      : String(stats.window ?? "–");
    f.state.textContent = shown; // the reason is in the status line, in full
  }
}
