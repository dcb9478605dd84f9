/**
 * Account controls in the viewer's bar: who is logged in, "Log out", and for admins a
 * small panel listing the share links with a "Revoke" button each.
 *
 * Interface with the server (same words as pyimagestreamd/authapi.py), all with the
 * X-PyImageStream header that marks our own page; the ones that change something POST:
 *   GET  api/session              {kind: "local"|"user"|"share", name, role, accounts}
 *   POST api/logout               ends the session; the server closes its WebSockets
 *   GET  api/shares               admin: {shares: [{id, camera, label, created_at, expires_at}]}
 *   POST api/shares/revoke?id=ID  admin: revoke one; its viewers are cut off at once
 * Nothing is shown without accounts (local-only default) or for a share link.
 */

const HEADERS = { "X-PyImageStream": "1" };

function request(path, method = "GET") {
  return fetch(path, { method, headers: HEADERS, credentials: "same-origin", cache: "no-store" });
}

function button(text, id) {
  const el = document.createElement("button");
  el.type = "button";
  el.className = "tool";
  if (id) el.id = id;
  el.textContent = text;
  return el;
}

async function showShares(panel) {
  panel.replaceChildren();
  const response = await request("api/shares");
  if (!response.ok) {
    panel.textContent = `Could not list the share links (${response.status}).`;
    return;
  }
  const { shares } = await response.json();
  if (!shares.length) {
    panel.textContent = "No share links. Make one with: pyimagestreamd share CAMERA --expires 7d";
    return;
  }
  const list = document.createElement("ul");
  list.className = "shares";
  for (const share of shares) {
    const item = document.createElement("li");
    item.dataset.id = share.id;
    const until = new Date(share.expires_at * 1000).toLocaleString();
    const text = document.createElement("span");
    text.textContent = `${share.camera} — ${share.label || share.id} — until ${until}`;
    const revoke = button("Revoke");
    revoke.classList.add("revoke");
    revoke.addEventListener("click", async () => {
      const done = await request(`api/shares/revoke?id=${encodeURIComponent(share.id)}`, "POST");
      if (done.ok) item.remove();
    });
    item.append(text, revoke);
    list.append(item);
  }
  panel.append(list);
}

async function start() {
  let who;
  try {
    const response = await request("api/session");
    if (!response.ok) return;
    who = await response.json();
  } catch (err) {
    return;
  }
  if (who.kind !== "user") return;
  const tools = document.querySelector(".tools");
  const user = document.createElement("span");
  user.className = "user";
  user.id = "user";
  user.textContent = who.name;
  const logout = button("Log out", "logout");
  logout.addEventListener("click", async () => {
    await request("api/logout", "POST");
    window.location.replace("login.html");
  });
  tools.append(user);
  if (who.role === "admin") {
    const panel = document.createElement("section");
    panel.id = "shares";
    panel.className = "notice";
    panel.hidden = true;
    document.querySelector(".bar").after(panel);
    const toggle = button("Shares", "shares-toggle");
    toggle.addEventListener("click", () => {
      panel.hidden = !panel.hidden;
      if (!panel.hidden) showShares(panel);
    });
    tools.append(toggle);
  }
  tools.append(logout);
}

start();
