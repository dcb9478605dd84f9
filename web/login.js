/**
 * Login page: sends the name and password once to api/login (as HTTP Basic, with the
 * X-PyImageStream header that marks our own page), which answers with a session cookie
 * (HttpOnly: this script never sees it), then opens the viewer.
 *
 * Interface with the server (same words as pyimagestreamd/authapi.py):
 *   GET  api/session  200 {kind, name, role}: already logged in -> straight to the viewer
 *   POST api/login    200: logged in; 401 wrong name or password; 429 too many failures,
 *                     Retry-After says when to try again (the button waits that long).
 */

const form = document.getElementById("login");
const message = document.getElementById("message");
const submit = document.getElementById("submit");
const HEADERS = { "X-PyImageStream": "1" };

function say(text) {
  message.textContent = text;
  message.hidden = !text;
}

function openViewer() {
  // The fragment (#camera=...) of the page that sent us here survives the redirect.
  window.location.replace("./" + window.location.hash);
}

function basic(name, password) {
  const bytes = new TextEncoder().encode(`${name}:${password}`);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return "Basic " + btoa(binary);
}

function holdOff(seconds) {
  submit.disabled = true;
  setTimeout(() => {
    submit.disabled = false;
  }, seconds * 1000);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  say("");
  const name = document.getElementById("name").value;
  const password = document.getElementById("password").value;
  let response;
  try {
    response = await fetch("api/login", {
      method: "POST",
      headers: { ...HEADERS, Authorization: basic(name, password) },
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (err) {
    say("The camera cannot be reached.");
    return;
  }
  if (response.ok) {
    openViewer();
    return;
  }
  const wait = Number(response.headers.get("Retry-After") || 0);
  if (response.status === 429) {
    say(`Too many failed logins: try again in ${wait} s.`);
    holdOff(wait);
  } else if (response.status === 401) {
    say("Wrong name or password.");
  } else {
    say(`Login failed (${response.status}).`);
    if (wait) holdOff(wait);
  }
});

fetch("api/session", { headers: HEADERS, credentials: "same-origin", cache: "no-store" })
  .then((response) => {
    if (response.ok) openViewer();
  })
  .catch(() => {});
