// strangler dashboard: polls the public admin JSON API and renders it. No build step.
// The admin token lives in sessionStorage (this tab only); without it the page is read-only.
"use strict";

const TOKEN_KEY = "strangler.adminToken";
const POLL_MS = 1500;
const MODES = ["legacy", "shadow", "canary", "new"];
const page = document.body.dataset.page;
const onlyRoute = document.body.dataset.route || null;

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => (
  { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const pct = (x) => (x === null || x === undefined ? "–" : (x * 100).toFixed(1) + "%");
const token = () => sessionStorage.getItem(TOKEN_KEY);

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(url + ": HTTP " + response.status);
  return response.json();
}

function showError(message) {
  const box = document.getElementById("action-error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function send(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: { "Authorization": "Bearer " + token(), "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = {};
  try { data = await response.json(); } catch (e) { /* empty body */ }
  return { status: response.status, data };
}

// ------------------------------------------------------------------ token

function renderToken() {
  const has = !!token();
  document.getElementById("token-state").textContent = has ? "admin token set" : "read-only";
  document.getElementById("token-forget").hidden = !has;
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("token-input");
  if (input.value.trim()) sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = "";
  renderToken();
  refresh();
});
document.getElementById("token-forget").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  renderToken();
  refresh();
});

// ------------------------------------------------------------------ routes

function spark(trend) {
  const w = 120, h = 24, n = trend.length;
  const pts = [];
  trend.forEach((b, i) => {
    if (b.match_rate === null) return;
    const x = (i / Math.max(1, n - 1)) * (w - 2) + 1;
    const y = (1 - b.match_rate) * (h - 4) + 2;
    pts.push(x.toFixed(1) + "," + y.toFixed(1));
  });
  const line = pts.length > 1
    ? `<polyline fill="none" stroke="#2e7d32" stroke-width="1.5" points="${pts.join(" ")}"/>`
    : pts.length === 1 ? `<circle cx="${pts[0].split(",")[0]}" cy="${pts[0].split(",")[1]}" r="2" fill="#2e7d32"/>` : "";
  return `<svg class="spark" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" ` +
    `aria-label="match rate trend"><rect width="${w}" height="${h}" fill="#fafafa" stroke="#e3e6ec"/>${line}</svg>`;
}

function actionsCell(cell, route) {
  const state = token() ? "rw" : "ro";
  if (cell.dataset.state === state) return;
  cell.dataset.state = state;
  if (state === "ro") {
    cell.innerHTML = '<span class="readonly">read-only (set the admin token)</span>';
    return;
  }
  const options = MODES.map((m) => `<option value="${m}">${m}</option>`).join("");
  cell.innerHTML = `<select class="flip-mode" aria-label="mode">${options}</select> ` +
    `<input class="flip-percent" type="number" min="0" max="100" step="1" placeholder="%" aria-label="percent"> ` +
    `<button class="flip-apply" type="button">Flip</button> ` +
    `<button class="flip-reset" type="button">Reset</button>`;
  cell.querySelector(".flip-mode").value = route.mode;
  cell.querySelector(".flip-apply").addEventListener("click", () => flip(cell, route.name));
  cell.querySelector(".flip-reset").addEventListener("click", () => reset(route.name));
}

async function flip(cell, name) {
  const mode = cell.querySelector(".flip-mode").value;
  const raw = cell.querySelector(".flip-percent").value;
  const body = { mode };
  if (mode === "canary") body.percent = raw === "" ? 10 : Number(raw);
  const url = `/api/routes/${encodeURIComponent(name)}/override`;
  let result = await send("PUT", url, body);
  if (result.status === 409 && window.confirm(result.data.error + "\n\nFlip anyway?")) {
    result = await send("PUT", url, { ...body, force: true });
  }
  showError(result.status >= 400 ? `flip ${name}: ${result.data.error || result.status}` : "");
  refresh();
}

async function reset(name) {
  const result = await send("DELETE", `/api/routes/${encodeURIComponent(name)}/override`);
  showError(result.status >= 400 ? `reset ${name}: ${result.data.error || result.status}` : "");
  refresh();
}

function wantsShadow(route) {
  return route.mode === "shadow" || (route.config && route.config.shadow);
}

async function renderRoutes() {
  const data = await getJSON("/api/routes");
  const banner = document.getElementById("reload-error");
  banner.textContent = data.last_reload_error ? "Last reload rejected: " + data.last_reload_error : "";
  banner.hidden = !data.last_reload_error;
  const notice = document.getElementById("state-notice");
  notice.textContent = (data.state && data.state.notice) || "";
  notice.hidden = !notice.textContent;
  const body = document.querySelector("#routes tbody");
  const routes = data.routes.filter((r) => !onlyRoute || r.name === onlyRoute);
  await Promise.all(routes.map(async (route) => {
    let row = body.querySelector(`tr[data-route="${CSS.escape(route.name)}"]`);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.route = route.name;
      row.innerHTML = `<td><a href="/routes/${encodeURIComponent(route.name)}">${esc(route.name)}</a></td>` +
        '<td class="mode"></td><td class="percent"></td><td class="source"></td><td class="rate"></td>' +
        '<td class="errors"></td><td class="fallbacks"></td><td class="match"></td><td class="trend"></td>' +
        '<td class="actions"></td>';
      body.appendChild(row);
    }
    const cell = (name) => row.querySelector("." + name);
    cell("mode").textContent = route.mode;
    cell("mode").className = "mode mode-" + route.mode;
    cell("percent").textContent = route.percent + "%";
    cell("source").textContent = route.source + (route.reason ? ": " + route.reason : "");
    cell("source").className = "source source-" + route.source;
    const traffic = route.traffic || {};
    cell("rate").textContent = traffic.requests_per_min ?? "–";
    cell("errors").textContent = pct(traffic.error_rate);
    cell("errors").classList.toggle("bad", (traffic.error_rate || 0) > 0.05);
    cell("fallbacks").textContent = traffic.fallbacks ?? "–";
    if (wantsShadow(route)) {
      try {
        const shadow = await getJSON(`/api/routes/${encodeURIComponent(route.name)}/shadow?samples=0`);
        cell("match").textContent = `${pct(shadow.match_rate)} of ${shadow.compared}`;
        cell("match").classList.toggle("bad", shadow.match_rate !== null && shadow.match_rate < 0.98);
        cell("trend").innerHTML = spark(shadow.trend);
      } catch (e) {
        cell("match").textContent = pct(route.shadow_match_rate);
      }
    } else {
      cell("match").textContent = pct(route.shadow_match_rate);
      cell("trend").textContent = "";
    }
    actionsCell(cell("actions"), route);
  }));
}

// ------------------------------------------------------------------ audit

function describe(override) {
  if (!override) return "config";
  if (override.owner) return `${override.owner} (epoch ${override.epoch}, ${override.state})`;
  return override.mode + (override.mode === "canary" ? " " + override.percent + "%" : "");
}

async function renderAudit() {
  const data = await getJSON("/api/audit?limit=20");
  const rows = data.entries.map((e) => `<tr><td>${esc(new Date(e.at * 1000).toLocaleString())}</td>` +
    `<td>${esc(e.action)}</td><td>${esc(e.route)}</td><td>${esc(e.who)}</td>` +
    `<td>${esc(describe(e.previous))}</td><td>${esc(describe(e.current))}</td>` +
    `<td>${esc(e.reason || "")}</td></tr>`);
  document.querySelector("#audit tbody").innerHTML = rows.join("") ||
    '<tr><td colspan="7" class="readonly">no changes yet</td></tr>';
}

// ------------------------------------------------------------------ contexts

function lastCutover(last) {
  if (!last) return "none yet";
  const when = new Date(last.at * 1000).toLocaleTimeString();
  const held = (last.held_seconds * 1000).toFixed(0);
  return `to ${last.to}: ${last.result}, writes held ${held} ms (${when})` +
    (last.reason ? ` — ${last.reason}` : "");
}

function cutoverCell(cell, context) {
  const target = context.owner === "service" ? "legacy" : "service";
  const state = token() ? "rw:" + target + ":" + context.state : "ro";
  if (cell.dataset.state === state) return;
  cell.dataset.state = state;
  if (!token()) {
    cell.innerHTML = '<span class="readonly">read-only (set the admin token)</span>';
    return;
  }
  cell.innerHTML = `<button class="cutover" type="button"${context.state !== "steady" ? " disabled" : ""}>` +
    `Cut over to ${esc(target)}</button>`;
  cell.querySelector(".cutover").addEventListener("click", () => cutover(context.name, target));
}

async function cutover(name, to) {
  if (!window.confirm(`Move the writes and data of ${name} to ${to}?\n\nWrites are held ` +
    "at the proxy while sync drains, then released to the new owner.")) return;
  const result = await send("POST", `/api/contexts/${encodeURIComponent(name)}/cutover`, { to });
  showError(result.status >= 400 ? `cutover ${name}: ${result.data.error || result.status}` : "");
  refresh();
}

async function renderContexts() {
  const table = document.getElementById("contexts");
  if (!table) return;
  const data = await getJSON("/api/contexts");
  let nonOwner = null;
  try { nonOwner = (await getJSON("/api/sync")).totals.non_owner; } catch (e) { /* no sync here */ }
  data.contexts.forEach((context) => {
    const row = table.querySelector(`tr[data-context="${CSS.escape(context.name)}"]`);
    if (!row) return;
    const cell = (name) => row.querySelector("." + name);
    cell("owner").textContent = context.owner;
    cell("state").textContent = context.state + (context.state !== "steady" ? " → " + context.to : "") +
      ` (epoch ${context.epoch})` + (context.held_here ? `, ${context.held_here} writes held here` : "");
    cell("last").textContent = lastCutover(context.last_cutover);
    cell("non-owner").textContent = nonOwner === null || nonOwner === undefined ? "–" : String(nonOwner);
    cutoverCell(cell("actions"), context);
  });
}

// ------------------------------------------------------------------ one route's shadow
// renderShadow() lives in shadow.js (loaded first on the route page).

// ------------------------------------------------------------------ loop

let busy = false;
async function refresh() {
  if (busy) return;
  busy = true;
  try {
    const parts = [renderRoutes()];
    if (page === "overview") parts.push(renderAudit(), renderContexts());
    if (page === "route") parts.push(renderShadow());
    await Promise.all(parts);
    document.body.dataset.updated = String(Date.now());
  } catch (e) {
    showError("could not refresh: " + e.message);
  } finally {
    busy = false;
  }
}

renderToken();
refresh();
setInterval(refresh, POLL_MS);
