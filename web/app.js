/*
 * app.js — the page: camera list, grid and single view, toolbar, keyboard, address.
 *
 * The camera list comes from api/state (or, if that fails, from the hello of the default
 * camera's WebSocket). The address says what is shown: "#camera=NAME" one camera full size,
 * anything else the grid of all cameras (a single camera is shown full size directly). Each
 * view on screen owns one CameraStream; views that leave the screen close theirs. All URLs
 * are relative to the page, so the client works under a reverse proxy's path prefix.
 *
 * Keys: Space or K pause/resume, F fullscreen, I statistics overlay, D download the frame,
 * + and - zoom, 0 resets the zoom, S data saver, Escape back to all cameras, 1-9 open a
 * camera.
 *
 * Smaller frames (where the server offers protocol 2's "size"): each grid tile asks for
 * frames no wider than it is drawn (in device pixels), and the data saver asks for at most
 * SAVER_WIDTH pixels in every view; one camera full size otherwise gets its full frames,
 * which zoom needs. With the data saver off, each view's AutoSaver (saver.js) turns it on
 * for that view by itself while the link cannot carry one full frame a second, and off again
 * when it can carry two; the button then shows "Data saver (auto)" pressed, and pressing it
 * keeps full frames for as long as the page is open.
 *
 * Fullscreen is the "full window" layout (only the picture, the controls over its corner),
 * made fullscreen through the Fullscreen API where the browser has it for elements; where it
 * has not (iPhone Safari) the full-window layout alone is used and the button says "Full
 * window". A browser that can decode no JPEG (decode.js) gets one plain message and no
 * connection at all, so the camera is not kept awake for nothing.
 *
 * Interface: importing this module starts the page. window.pyimagestream is the App, for
 * debugging from the console: .views (Map camera -> {view, stream}), .cameras, .mode.
 */

import { pickDecoder } from "./decode.js";
import { httpUrl } from "./protocol.js";
import { AutoSaver } from "./saver.js";
import { CameraStream } from "./stream.js";
import { CameraView } from "./view.js";

const REFRESH_MS = 250;
const ZOOM_STEP = 1.25;
const SAVER_WIDTH = 640;
const STATE_TIMEOUT_MS = 5000;

function byId(id) {
  return document.getElementById(id);
}

// Settings survive a reload where the browser allows storage (not in every private mode).
function readSetting(key) {
  try {
    return localStorage.getItem(key);
  } catch (err) {
    return null;
  }
}

function writeSetting(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch (err) {
    // Not stored: the setting holds for this page only.
  }
}

export function downloadName(camera, meta) {
  // The capture time, in UTC, without ":" (not allowed in file names everywhere).
  const stamp = new Date(meta.time * 1000).toISOString().replace(/:/g, "-");
  return `${camera}-${stamp}.jpg`;
}

// The Fullscreen API for elements, standard or with the prefix of older Safari on iPad; null
// where there is none (iPhone Safari).
function fullscreenApi(doc = document) {
  const el = doc.documentElement;
  if (doc.fullscreenEnabled && typeof el.requestFullscreen === "function") {
    return {
      element: () => doc.fullscreenElement,
      enter: (target) => target.requestFullscreen(),
      exit: () => doc.exitFullscreen(),
      event: "fullscreenchange",
    };
  }
  if (doc.webkitFullscreenEnabled && typeof el.webkitRequestFullscreen === "function") {
    return {
      element: () => doc.webkitFullscreenElement,
      enter: async (target) => target.webkitRequestFullscreen(),
      exit: async () => doc.webkitExitFullscreen(),
      event: "webkitfullscreenchange",
    };
  }
  return null;
}

export function cameraFromHash(hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  return params.get("camera");
}

class App {
  constructor() {
    this.cameras = null; // [{name, width, height}], once known
    this.views = new Map(); // camera -> {view, stream, retryAt, attempt, failReason}
    this.mode = null; // "grid" or "single"
    this.userPaused = false;
    this.main = byId("views");
    this.heading = byId("heading");
    this.buttons = {
      back: byId("back"),
      pause: byId("pause"),
      fullscreen: byId("fullscreen"),
      download: byId("download"),
      info: byId("info"),
      zoomReset: byId("zoom-reset"),
      saver: byId("saver"),
    };
    this.notice = byId("notice");
    this.showInfo = readSetting("pyimagestream.info") === "1";
    this.saver = readSetting("pyimagestream.saver") === "1";
    this.autoSaverOff = false; // full frames were asked for over the automatic data saver
    this.decoder = pickDecoder();
    this.fullscreen = fullscreenApi();
    this.fullWindow = false;
  }

  async start() {
    const b = this.buttons;
    b.back.addEventListener("click", () => this.openGrid());
    b.pause.addEventListener("click", () => this.togglePause());
    b.fullscreen.addEventListener("click", () => this.toggleFullscreen());
    b.download.addEventListener("click", () => this.download());
    b.info.addEventListener("click", () => this.toggleInfo());
    b.zoomReset.addEventListener("click", () => this.zoomKey("0"));
    b.saver.addEventListener("click", () => this.toggleSaver());
    let resizeTimer = 0;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => this.applySizes(), 300);
    });
    window.addEventListener("hashchange", () => this.route());
    document.addEventListener("visibilitychange", () => this.onVisibility());
    if (this.fullscreen) {
      document.addEventListener(this.fullscreen.event, () => {
        // Left by the browser's own means (Escape, a gesture): leave the layout too.
        if (!this.fullscreen.element()) this.setFullWindow(false);
      });
    }
    document.addEventListener("keydown", (event) => this.onKey(event));
    this.applyInfo();
    if (this.decoder === null) {
      this.stopForGood(
        "This browser cannot show the pictures: it has neither createImageBitmap nor image " +
          "decoding. The newest picture is at snapshot.jpg.",
      );
      return;
    }
    setInterval(() => this.refresh(), REFRESH_MS);

    this.cameras = await this.fetchCameras();
    if (this.cameras === null) {
      this.say("Could not read the camera list (api/state); showing the default camera.");
    }
    this.route();
  }

  async fetchCameras() {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), STATE_TIMEOUT_MS);
    try {
      const response = await fetch(httpUrl("api/state"), {
        cache: "no-store",
        signal: abort.signal,
      });
      if (!response.ok) return null;
      const state = await response.json();
      return state.cameras.map((c) => ({ name: c.name, width: c.width, height: c.height }));
    } catch (err) {
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

  stopForGood(text) {
    const message = document.createElement("p");
    message.className = "unsupported";
    message.setAttribute("role", "alert");
    message.textContent = text;
    this.main.replaceChildren(message);
    this.main.className = "stopped";
    for (const b of Object.values(this.buttons)) b.hidden = true;
  }

  say(text) {
    this.notice.textContent = text;
    this.notice.hidden = !text;
  }

  route() {
    const wanted = cameraFromHash(window.location.hash);
    if (wanted !== null) {
      this.show("single", [wanted]);
    } else if (this.cameras === null) {
      this.show("single", [""]); // the server's default camera; its hello names it
    } else if (this.cameras.length === 1) {
      this.show("single", [this.cameras[0].name]);
    } else {
      this.show("grid", this.cameras.map((c) => c.name));
    }
  }

  openGrid() {
    // An address of its own for the grid, so the browser's Back returns to the camera.
    if (window.location.hash) {
      history.pushState(null, "", window.location.pathname + window.location.search);
    }
    this.route();
  }

  show(mode, names) {
    const same =
      mode === this.mode &&
      names.length === this.views.size &&
      names.every((name) => this.views.has(name));
    if (same) return;
    for (const entry of this.views.values()) {
      entry.stream.close();
      entry.view.destroy();
    }
    this.views.clear();
    this.main.replaceChildren();
    this.mode = mode;
    this.main.className = mode === "grid" ? "grid" : "single";

    for (const [index, name] of names.entries()) {
      this.main.append(this.addView(name, mode, index));
    }
    const single = mode === "single" ? names[0] : null;
    this.heading.textContent = single === null ? "All cameras" : single || "Camera";
    document.title = single ? `${single} — pyimagestream` : "pyimagestream";
    this.updateToolbar();
    this.refresh();
    // Once laid out: the tiles' widths are known.
    requestAnimationFrame(() => this.applySizes());
  }

  // The width a view gets without any data saver: its tile's in the grid, else the camera's.
  normalWidth(entry) {
    if (this.mode !== "grid") return 0;
    const tile = Math.ceil(entry.view.element.clientWidth * (window.devicePixelRatio || 1));
    return tile > 0 ? tile : 0;
  }

  wantedWidth(entry) {
    const cap = this.saver || this.isAutoSaving(entry) ? SAVER_WIDTH : 0;
    const normal = this.normalWidth(entry);
    if (!normal) return cap;
    return cap ? Math.min(cap, normal) : normal;
  }

  isAutoSaving(entry) {
    return !this.saver && !this.autoSaverOff && entry.auto.active;
  }

  // Whether the automatic data saver should be measuring this view's link now: only while
  // frames flow, and only where a smaller frame would be smaller.
  autoSaverMeasures(entry) {
    const stream = entry.stream;
    if (this.saver || this.autoSaverOff || !stream.canResize) return false;
    if (stream.connection !== "open" || stream.state !== "live" || stream.paused) return false;
    const normal = this.normalWidth(entry) || entry.fullWidth;
    return normal > SAVER_WIDTH;
  }

  applySizes() {
    for (const entry of this.views.values()) entry.stream.setMaxWidth(this.wantedWidth(entry));
  }

  toggleSaver() {
    if (!this.saver && !this.autoSaverOff && this.anyAutoSaving()) {
      // Pressing the pressed button: full frames, though the link is slow.
      this.autoSaverOff = true;
    } else {
      this.saver = !this.saver;
      this.autoSaverOff = false;
      writeSetting("pyimagestream.saver", this.saver ? "1" : "0");
    }
    for (const entry of this.views.values()) entry.auto.reset();
    this.applySizes();
    this.updateToolbar();
  }

  anyAutoSaving() {
    return [...this.views.values()].some((entry) => this.isAutoSaving(entry));
  }

  tickAutoSaver(entry) {
    if (entry.auto.tick(performance.now(), this.autoSaverMeasures(entry))) {
      entry.stream.setMaxWidth(this.wantedWidth(entry));
      this.updateToolbar();
    }
  }

  addView(name, mode, index) {
    const view = new CameraView(name || "default", {
      compact: mode === "grid",
      bitmaps: this.decoder.kind === "bitmap",
      onZoom: () => this.updateToolbar(),
    });
    const known = this.cameras && this.cameras.find((c) => c.name === name);
    if (known) view.setSize(known.width, known.height);
    const entry = {
      view,
      stream: null,
      retryAt: 0,
      attempt: 0,
      failReason: "",
      auto: new AutoSaver(SAVER_WIDTH),
      fullWidth: known ? known.width : 0, // the camera's own width, once known
    };
    const stream = new CameraStream(name, {
      decoder: this.decoder,
      onFrame: (bitmap, meta) => {
        view.showFrame(bitmap, meta);
        if (stream.frames === 1) this.refreshOne(entry); // drop "waiting" at once
      },
      onState: () => this.refreshOne(entry),
      onArrival: (meta, bytes) => {
        if (stream.maxWidth === 0) entry.fullWidth = Math.max(entry.fullWidth, meta.width);
        entry.auto.frameArrived(meta, bytes, performance.now());
      },
      onHello: (hello) => this.onHello(hello, entry),
      onConnection: (status, info) => {
        entry.retryAt = info.delay ? performance.now() + info.delay : 0;
        entry.attempt = info.attempt || 0;
        if (status === "failed") entry.failReason = info.reason;
        this.refreshOne(entry);
      },
    });
    entry.stream = stream;
    this.views.set(name, entry);
    if (this.userPaused) stream.setPaused("user", true);
    if (document.hidden) stream.setPaused("hidden", true);
    stream.start();

    if (mode !== "grid") return view.element;
    const link = document.createElement("a");
    link.className = "tile";
    link.href = `#camera=${encodeURIComponent(name)}`;
    link.setAttribute("aria-label", `Open camera ${name}`);
    link.title = index < 9 ? `Open camera ${name} (key ${index + 1})` : `Open camera ${name}`;
    link.append(view.element);
    return link;
  }

  onHello(hello, entry) {
    if (this.cameras === null && Array.isArray(hello.cameras)) {
      this.cameras = hello.cameras.map((name) => ({ name, width: 0, height: 0 }));
      if (this.mode === "single" && !cameraFromHash(window.location.hash)) {
        entry.view.camera = hello.camera;
        this.heading.textContent = hello.camera;
        document.title = `${hello.camera} — pyimagestream`;
      }
      this.updateToolbar();
    }
  }

  onVisibility() {
    // A hidden tab pulls nothing: the server stops counting it as a viewer.
    for (const { stream } of this.views.values()) stream.setPaused("hidden", document.hidden);
    this.refresh();
  }

  togglePause() {
    this.userPaused = !this.userPaused;
    for (const { stream } of this.views.values()) stream.setPaused("user", this.userPaused);
    this.updateToolbar();
    this.refresh();
  }

  toggleInfo() {
    this.showInfo = !this.showInfo;
    writeSetting("pyimagestream.info", this.showInfo ? "1" : "0");
    this.applyInfo();
    this.refresh();
  }

  applyInfo() {
    document.body.classList.toggle("show-info", this.showInfo);
    this.buttons.info.setAttribute("aria-pressed", String(this.showInfo));
  }

  async toggleFullscreen() {
    const api = this.fullscreen;
    if (this.fullWindow) {
      this.setFullWindow(false);
      if (api && api.element()) await api.exit().catch(() => {});
      return;
    }
    this.setFullWindow(true);
    if (!api) return;
    try {
      // The whole page, so the controls stay at hand (there is no Escape key on a phone).
      await api.enter(document.documentElement);
    } catch (err) {
      // Refused (no user gesture, a frame's policy): the full-window layout stays.
      console.info(`pyimagestream: fullscreen refused (${err.message}); full window instead`);
    }
  }

  setFullWindow(on) {
    this.fullWindow = on;
    document.body.classList.toggle("full-window", on);
    this.updateToolbar();
  }

  singleView() {
    if (this.mode !== "single" || this.views.size !== 1) return null;
    return [...this.views.values()][0].view;
  }

  zoomKey(key) {
    const zoom = this.singleView()?.zoom;
    if (!zoom) return false;
    if (key === "0") zoom.reset();
    else zoom.zoomBy(key === "-" ? 1 / ZOOM_STEP : ZOOM_STEP);
    return true;
  }

  download() {
    if (this.mode !== "single") return;
    const [entry] = this.views.values();
    const last = entry && entry.stream.lastJpeg();
    if (!last) {
      this.say("No frame to download yet.");
      return;
    }
    const url = URL.createObjectURL(new Blob([last.jpeg], { type: "image/jpeg" }));
    const link = document.createElement("a");
    link.href = url;
    link.download = downloadName(last.meta.camera || entry.stream.camera, last.meta);
    document.body.append(link);
    link.click();
    link.remove();
    // The download has its own reference by now; give it a moment anyway.
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  updateToolbar() {
    const b = this.buttons;
    const many = this.cameras !== null && this.cameras.length > 1;
    b.back.hidden = !(this.mode === "single" && many);
    b.download.hidden = this.mode !== "single";
    b.pause.setAttribute("aria-pressed", String(this.userPaused));
    b.pause.querySelector(".label").textContent = this.userPaused ? "Resume" : "Pause";
    b.pause.title = this.userPaused ? "Resume (Space)" : "Pause (Space)";
    b.pause.classList.toggle("is-paused", this.userPaused);
    const full = this.fullWindow;
    const word = this.fullscreen ? "fullscreen" : "full window";
    b.fullscreen.setAttribute("aria-pressed", String(full));
    b.fullscreen.querySelector(".label").textContent = full
      ? `Exit ${word}`
      : word[0].toUpperCase() + word.slice(1);
    b.fullscreen.title = `${b.fullscreen.querySelector(".label").textContent} (F)`;
    const zoom = this.singleView()?.zoom;
    b.zoomReset.hidden = !(zoom && zoom.isZoomed);
    const auto = this.anyAutoSaving();
    b.saver.setAttribute("aria-pressed", String(this.saver || auto));
    b.saver.dataset.auto = String(auto);
    b.saver.querySelector(".label").textContent = auto ? "Data saver (auto)" : "Data saver";
    b.saver.title = auto
      ? "Data saver, on by itself: the link cannot carry one full picture a second; press for full pictures (S)"
      : "Data saver: smaller pictures (S)";
  }

  onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) {
      return;
    }
    const key = event.key;
    // Space on a focused button or link already activates it.
    const onControl = target && /^(BUTTON|A)$/.test(target.tagName);
    if ((key === " " && !onControl) || key === "k" || key === "K") {
      this.togglePause();
    } else if (key === "f" || key === "F") {
      this.toggleFullscreen();
    } else if (key === "i" || key === "I") {
      this.toggleInfo();
    } else if (key === "s" || key === "S") {
      this.toggleSaver();
    } else if (key === "d" || key === "D") {
      this.download();
    } else if (key === "+" || key === "=" || key === "-" || key === "0") {
      if (!this.zoomKey(key)) return;
    } else if (key === "Escape" && this.fullWindow) {
      this.toggleFullscreen();
    } else if (key === "Escape" && this.mode === "single") {
      if (this.cameras && this.cameras.length > 1) this.openGrid();
      else return;
    } else if (/^[1-9]$/.test(key) && this.cameras && this.cameras[Number(key) - 1]) {
      window.location.hash = `camera=${encodeURIComponent(this.cameras[Number(key) - 1].name)}`;
    } else {
      return;
    }
    event.preventDefault();
  }

  refreshOne(entry) {
    const now = performance.now();
    const stats = entry.stream.stats();
    stats.retryIn = entry.retryAt ? entry.retryAt - now : 0;
    stats.attempt = entry.attempt;
    stats.failReason = entry.failReason;
    stats.pausedByUser = entry.stream.pausedBy("user");
    stats.autoSaver = this.isAutoSaving(entry);
    entry.view.update(stats);
  }

  refresh() {
    for (const entry of this.views.values()) {
      this.tickAutoSaver(entry);
      this.refreshOne(entry);
    }
  }
}

const app = new App();
window.pyimagestream = app;
app.start();
