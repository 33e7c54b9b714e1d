// The jwt-authz demo page: log in, show the token's claims, call the API and show what
// Envoy and jwt-authz answered. Plain script, no build step, no dependencies.
"use strict";

const api = document.querySelector('meta[name="api-origin"]').content; // "" = this origin
const $ = (id) => document.getElementById(id);
const store = {
  get token() { return localStorage.getItem("jwt-authz-demo.token") || ""; },
  set token(v) { v ? localStorage.setItem("jwt-authz-demo.token", v) : localStorage.removeItem("jwt-authz-demo.token"); },
  get cookie() { return localStorage.getItem("jwt-authz-demo.cookie") === "1"; },
  set cookie(v) { v ? localStorage.setItem("jwt-authz-demo.cookie", "1") : localStorage.removeItem("jwt-authz-demo.cookie"); },
};

// claimsOf decodes a JWT's payload for display only: the page trusts nothing in it.
function claimsOf(token) {
  try {
    const b64 = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
    return JSON.parse(json);
  } catch {
    return null;
  }
}

function showSession() {
  const claims = store.token ? claimsOf(store.token) : null;
  if (claims) {
    $("session").textContent = `Logged in as ${claims.sub}; the token is in local storage and goes out as Authorization: Bearer. Its claims:`;
    $("claims").textContent = JSON.stringify(claims, null, 2);
    $("claims").hidden = false;
  } else if (store.cookie) {
    $("session").textContent = "Logged in with a cookie session: the token is in an HttpOnly cookie, which this page cannot read. The API's answers show who you are.";
    $("claims").hidden = true;
  } else {
    $("session").textContent = "Not logged in.";
    $("claims").hidden = true;
  }
}

function showResult(what, status, challenge, body) {
  $("result").dataset.status = String(status);
  $("call").textContent = what;
  $("status").textContent = typeof status === "number" ? `${status}` : status;
  $("challenge-line").hidden = !challenge;
  $("challenge").textContent = challenge || "";
  $("body").textContent = body;
}

async function login(event) {
  event.preventDefault();
  const cookie = $("mode") ? $("mode").value === "cookie" : false;
  store.token = "";
  store.cookie = false;
  try {
    const res = await fetch(api + "/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: $("username").value, password: $("password").value, cookie: cookie || undefined }),
    });
    const body = await res.json();
    if (!res.ok) {
      // 401 for a wrong password, 429 after 5 logins per user per minute.
      showResult("POST /login", res.status, "", JSON.stringify(body, null, 2));
      showSession();
      return;
    }
    if (cookie) {
      store.cookie = true;
    } else {
      store.token = body.access_token;
    }
    showResult("POST /login", res.status, "", cookie ? JSON.stringify(body, null, 2) : "(token stored)");
  } catch (err) {
    showResult("POST /login", "failed: " + err.message, "", "");
  }
  showSession();
}

async function logout() {
  store.token = "";
  store.cookie = false;
  try {
    const res = await fetch(api + "/logout", { method: "POST" });
    showResult("POST /logout", res.status, "", "");
  } catch (err) {
    showResult("POST /logout", "failed: " + err.message, "", "");
  }
  showSession();
}

async function call(what) {
  const [method, path] = what.split(" ");
  const headers = {};
  if (store.token) headers.authorization = "Bearer " + store.token;
  try {
    // A cookie goes only to this origin ("same-origin"); cross-origin calls use the header.
    const res = await fetch(api + path, { method, headers, credentials: "same-origin" });
    const text = await res.text();
    let body = text;
    try { body = JSON.stringify(JSON.parse(text), null, 2); } catch { /* not JSON */ }
    showResult(what, res.status, res.headers.get("www-authenticate"), body);
  } catch (err) {
    // A CORS refusal shows up here: the browser hides the answer from the page.
    showResult(what, "failed: " + err.message, "", "");
  }
}

$("login-form").addEventListener("submit", login);
$("logout").addEventListener("click", logout);
for (const b of document.querySelectorAll("button[data-call]")) {
  b.addEventListener("click", () => call(b.dataset.call));
}
showSession();
