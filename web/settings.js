/**
 * Camera settings for admins: a panel with the camera's controls — a slider for each integer
 * control (its min, max and step), a switch for each boolean, a list for each menu — applied
 * live, each showing the value the server read back from the driver, with "Save" (kept across
 * restarts) and "Reset to defaults". Nothing is shown to viewers, share links, or without
 * accounts.
 *
 * Interface with the server (same words as pyimagestreamd/controlapi.py):
 *   GET  api/camera/NAME/controls        {camera, state, controls: {name: {type, min, max,
 *                                         step, default, value, menu?, read_only?}}, changed}
 *   POST api/camera/NAME/controls        JSON {name: value} -> 200 {applied: true, values,
 *                                         controls} | 202 {applied: false, kept} (asleep) |
 *                                         400/409 {error}
 *   POST api/camera/NAME/controls/reset  every control back to its default
 *   POST api/camera/NAME/controls/save   keep the changed values across restarts
 * A slider sends at most one request at a time: while one is on its way, the newest value
 * waits and goes next, so dragging never queues a backlog of changes.
 *
 * Which camera: the one on screen ("#camera=NAME"); in the grid of several cameras, the one
 * picked last, in the panel's own camera list or by moving the focus to its tile (Tab), else
 * the first. The panel follows a pick while it is open, and the
 * grid marks the tile whose settings it shows.
 */

import { cameraFromHash } from "./app.js";

const HEADERS = { "X-PyImageStream": "1" };

function api(camera, action = "") {
  const tail = action ? `/${action}` : "";
  return `api/camera/${encodeURIComponent(camera)}/controls${tail}`;
}

async function call(path, body) {
  const init = { headers: { ...HEADERS }, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let doc = {};
  try {
    doc = await response.json();
  } catch (err) {
    doc = { error: `${response.status} ${response.statusText}` };
  }
  return { status: response.status, doc };
}

function label(name) {
  const text = name.replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  node.append(...children);
  return node;
}

export class SettingsPanel {
  constructor(panel, toggle) {
    this.panel = panel;
    this.toggle = toggle;
    this.camera = null;
    this.cameras = []; // every camera's name, for the list in the grid
    this.picked = null; // the camera picked last (list, tile, or the one on screen)
    this.inputs = new Map(); // control -> {input, output, spec}
    this.sending = false;
    this.queued = new Map(); // control -> value waiting for the request on its way
  }

  async cameraNames() {
    const { status, doc } = await call("api/state");
    return status === 200 && Array.isArray(doc.cameras) ? doc.cameras.map((c) => c.name) : [];
  }

  async pick(name) {
    this.picked = name;
    if (!this.panel.hidden && name !== this.camera) await this.open();
  }

  async open() {
    this.cameras = await this.cameraNames();
    const onScreen = cameraFromHash(window.location.hash);
    if (onScreen) this.picked = onScreen;
    if (this.cameras.includes(this.picked)) this.camera = this.picked;
    else this.camera = onScreen || this.cameras[0] || null;
    this.mark();
    if (this.camera === null) {
      this.panel.replaceChildren(el("p", { textContent: "No camera." }));
      return;
    }
    const camera = this.camera;
    const { status, doc } = await call(api(camera));
    if (camera !== this.camera) return; // another pick came while this one loaded
    if (status !== 200) {
      this.panel.replaceChildren(
        ...this.chooser(),
        el("p", { textContent: `Settings unavailable: ${doc.error || status}` }),
      );
      return;
    }
    this.render(doc.controls);
  }

  /** The camera list, in the grid of several cameras only (one on screen is the one set). */
  chooser() {
    if (cameraFromHash(window.location.hash) || this.cameras.length < 2) return [];
    const list = el("select", { id: "settings-camera", name: "camera" });
    for (const name of this.cameras) list.append(el("option", { value: name, textContent: name }));
    list.value = this.camera;
    list.addEventListener("change", async () => {
      await this.pick(list.value);
      document.getElementById("settings-camera")?.focus(); // the list was drawn anew
    });
    const row = el("div", { className: "setting settings-camera" });
    row.append(el("label", { htmlFor: "settings-camera", textContent: "Camera" }), list);
    return [row];
  }

  /** Mark the grid tile whose settings the open panel shows (none while it is closed). */
  mark() {
    for (const tile of document.querySelectorAll("a.tile")) {
      const name = cameraFromHash(tile.getAttribute("href") || "");
      tile.classList.toggle("configuring", !this.panel.hidden && name === this.camera);
    }
  }

  render(controls) {
    this.inputs.clear();
    const heading = el("h2", { id: "settings-heading", textContent: `${this.camera}: settings` });
    const list = el("div", { className: "settings-list" });
    for (const [name, spec] of Object.entries(controls)) {
      if (!["int", "bool", "menu"].includes(spec.type) || spec.read_only) continue;
      list.append(this.row(name, spec));
    }
    if (!list.childElementCount) list.append(el("p", { textContent: "This camera has no controls to set." }));
    const save = el("button", { type: "button", className: "tool", id: "settings-save", textContent: "Save" });
    save.addEventListener("click", () => this.save());
    const reset = el("button", { type: "button", className: "tool", id: "settings-reset", textContent: "Reset to defaults" });
    reset.addEventListener("click", () => this.reset());
    this.status = el("p", { className: "settings-status", id: "settings-status", role: "status" });
    this.panel.replaceChildren(
      heading,
      ...this.chooser(),
      list,
      el("div", { className: "settings-actions" }, save, reset),
      this.status,
    );
  }

  row(name, spec) {
    const id = `control-${name}`;
    const row = el("div", { className: "setting" });
    row.dataset.control = name;
    const output = el("output", { htmlFor: id, className: "setting-value" });
    let input;
    if (spec.type === "bool") {
      input = el("input", { type: "checkbox", id, checked: Boolean(spec.value) });
      input.setAttribute("role", "switch");
      input.addEventListener("change", () => this.change(name, input.checked ? 1 : 0));
    } else if (spec.type === "menu") {
      input = el("select", { id });
      for (const [value, text] of Object.entries(spec.menu || {})) {
        input.append(el("option", { value, textContent: String(text) }));
      }
      input.value = String(spec.value);
      input.addEventListener("change", () => this.change(name, Number(input.value)));
    } else {
      input = el("input", { type: "range", id, min: spec.min, max: spec.max, step: spec.step || 1 });
      input.value = String(spec.value);
      input.addEventListener("input", () => this.change(name, Number(input.value)));
    }
    input.name = name;
    const text = label(name) + (spec.inactive ? " (inactive)" : "");
    row.append(el("label", { htmlFor: id, textContent: text }), input, output);
    this.inputs.set(name, { input, output, spec });
    this.show(name, spec.value);
    return row;
  }

  /** Show the server's value for a control (the slider follows unless a newer one waits). */
  show(name, value) {
    const entry = this.inputs.get(name);
    if (!entry || value === null || value === undefined) return;
    const { input, output, spec } = entry;
    if (spec.type === "bool") {
      output.textContent = value ? "on" : "off";
      if (!this.queued.has(name)) input.checked = Boolean(value);
    } else if (spec.type === "menu") {
      output.textContent = String((spec.menu || {})[String(value)] ?? value);
      if (!this.queued.has(name)) input.value = String(value);
    } else {
      output.textContent = String(value);
      if (!this.queued.has(name) && document.activeElement !== input) input.value = String(value);
    }
    output.dataset.value = String(value);
  }

  change(name, value) {
    this.queued.set(name, value);
    if (!this.sending) this.flush();
  }

  async flush() {
    this.sending = true;
    try {
      while (this.queued.size) {
        const values = Object.fromEntries(this.queued);
        this.queued.clear();
        const { status, doc } = await call(api(this.camera), values);
        this.report(status, doc);
      }
    } catch (err) {
      this.say(`Not applied: ${err.message}`);
    } finally {
      this.sending = false;
    }
  }

  report(status, doc) {
    if (status === 200 || status === 409) {
      for (const [name, value] of Object.entries(doc.values || {})) this.show(name, value);
      this.say(status === 200 ? "" : `Not applied: ${doc.error}`);
    } else if (status === 202) {
      for (const [name, value] of Object.entries(doc.kept || {})) this.show(name, value);
      this.say("The camera is asleep: applied when it starts.");
    } else {
      this.say(`Not applied: ${doc.error || status}`);
    }
  }

  async save() {
    const { status, doc } = await call(api(this.camera, "save"), {});
    this.say(status === 200 ? "Saved: these settings come back after a restart." : `Not saved: ${doc.error || status}`);
  }

  async reset() {
    const { status, doc } = await call(api(this.camera, "reset"), {});
    if (status === 200 && doc.controls) {
      this.render(doc.controls);
      this.say("Back to the defaults (not saved yet).");
    } else {
      this.report(status, doc);
      if (status === 202) this.open();
    }
  }

  say(text) {
    if (this.status) this.status.textContent = text;
  }
}

async function start() {
  let who;
  try {
    const response = await fetch("api/session", { headers: HEADERS, credentials: "same-origin", cache: "no-store" });
    if (!response.ok) return;
    who = await response.json();
  } catch (err) {
    return;
  }
  if (who.kind !== "user" || who.role !== "admin") return;
  const panel = el("section", { id: "settings", className: "settings", hidden: true });
  panel.setAttribute("aria-labelledby", "settings-heading");
  document.body.append(panel);
  const toggle = el("button", { type: "button", className: "tool", id: "settings-toggle", textContent: "Settings" });
  toggle.setAttribute("aria-expanded", "false");
  toggle.setAttribute("aria-controls", "settings");
  const settings = new SettingsPanel(panel, toggle);
  toggle.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    toggle.setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) settings.open();
    else settings.mark();
  });
  panel.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    event.stopPropagation(); // not "back to all cameras" as well
    panel.hidden = true;
    toggle.setAttribute("aria-expanded", "false");
    settings.mark();
    toggle.focus();
  });
  window.addEventListener("hashchange", () => {
    if (!panel.hidden) settings.open();
  });
  // A focused tile is a pick: the grid's tiles are links to their camera.
  document.addEventListener("focusin", (event) => {
    const tile = event.target instanceof Element ? event.target.closest("a.tile") : null;
    const name = tile ? cameraFromHash(tile.getAttribute("href") || "") : null;
    if (name) settings.pick(name);
  });
  document.querySelector(".tools").append(toggle);
}

start();
