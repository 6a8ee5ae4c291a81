// strangler dashboard, one route's shadow comparison: window, trend, endpoints,
// signatures, fields, samples (paged, filtered), reset and export. Loaded before
// dashboard.js, which calls renderShadow() on every poll. Uses its helpers
// (esc, pct, getJSON, send, token, showError) at call time.
"use strict";

const SAMPLES_PER_PAGE = 5;
const shadowState = { window: "version", offset: 0, filter: null, lastKey: null };

function shadowUrl(extra, suffix = "") {
  const q = new URLSearchParams({ window: shadowState.window, ...extra });
  if (shadowState.filter) q.set(shadowState.filter.kind, shadowState.filter.value);
  return `/api/routes/${encodeURIComponent(onlyRoute)}/shadow${suffix}?${q}`;
}

function setFilter(kind, value) {
  shadowState.filter = kind ? { kind, value } : null;
  shadowState.offset = 0;
  shadowState.lastKey = null;
  refresh();
}

// ------------------------------------------------------------------ trend chart

// Match rate (line, left axis 0-100%) and comparisons per 10 s (bars, faint), the
// last five minutes, with labelled axes: readable without hovering.
function trendChart(trend) {
  const w = 640, h = 150, left = 42, right = 8, top = 10, bottom = 24;
  const iw = w - left - right, ih = h - top - bottom, n = trend.length;
  const most = Math.max(1, ...trend.map((b) => b.match + b.mismatch));
  const x = (i) => left + (i + 0.5) * (iw / n);
  const bars = trend.map((b, i) => {
    const total = b.match + b.mismatch;
    const bh = (total / most) * ih;
    const bad = (b.mismatch / most) * ih;
    return `<rect x="${(x(i) - iw / n / 2 + 1).toFixed(1)}" y="${(top + ih - bh).toFixed(1)}" ` +
      `width="${(iw / n - 2).toFixed(1)}" height="${bh.toFixed(1)}" fill="#dfe7dc"/>` +
      (bad ? `<rect x="${(x(i) - iw / n / 2 + 1).toFixed(1)}" y="${(top + ih - bad).toFixed(1)}" ` +
        `width="${(iw / n - 2).toFixed(1)}" height="${bad.toFixed(1)}" fill="#f3c1bd"/>` : "");
  }).join("");
  const pts = trend.map((b, i) => b.match_rate === null ? null :
    `${x(i).toFixed(1)},${(top + (1 - b.match_rate) * ih).toFixed(1)}`).filter(Boolean);
  const line = pts.length > 1
    ? `<polyline class="rate" fill="none" stroke="#2e7d32" stroke-width="2" points="${pts.join(" ")}"/>`
    : pts.map((p) => `<circle class="rate" cx="${p.split(",")[0]}" cy="${p.split(",")[1]}" r="3" fill="#2e7d32"/>`).join("");
  const grid = [0, 0.5, 1].map((r) => {
    const y = top + (1 - r) * ih;
    return `<line x1="${left}" x2="${w - right}" y1="${y}" y2="${y}" stroke="#e3e6ec"/>` +
      `<text x="${left - 6}" y="${y + 4}" text-anchor="end">${r * 100}%</text>`;
  }).join("");
  const axis = `<text x="${left}" y="${h - 6}">−5 min</text>` +
    `<text x="${w - right}" y="${h - 6}" text-anchor="end">now</text>` +
    `<text x="${left + iw / 2}" y="${h - 6}" text-anchor="middle">bars: comparisons per 10 s (red: mismatches)</text>`;
  return `<svg id="trend-chart" viewBox="0 0 ${w} ${h}" role="img" aria-label="match rate, last 5 minutes">` +
    `${grid}${bars}${line}${axis}</svg>`;
}

// ------------------------------------------------------------------ tables

function tableRows(selector, rows, empty, cols) {
  document.querySelector(selector + " tbody").innerHTML = rows.join("") ||
    `<tr><td colspan="${cols}" class="readonly">${esc(empty)}</td></tr>`;
}

function renderEndpoints(data) {
  tableRows("#endpoints", data.endpoints.map((e) =>
    `<tr data-endpoint="${esc(e.endpoint)}" class="pick"><td><code>${esc(e.endpoint)}</code></td>` +
    `<td>${e.compared}</td><td class="${e.match_rate !== null && e.match_rate < 0.98 ? "bad" : "good"}">` +
    `${pct(e.match_rate)}</td><td>${e.counts.mismatch || 0}</td><td>${e.counts.error || 0}</td></tr>`),
  "no comparisons in this window", 5);
}

function renderSignatures(data) {
  tableRows("#signatures", data.signatures.map((s) =>
    `<tr data-signature="${esc(s.id)}" class="pick"><td>${s.fields.map((f) => `<code>${esc(f)}</code>`).join(" ")}</td>` +
    `<td>${s.mismatches}</td><td>${pct(s.share)}</td>` +
    `<td>${s.example ? `${esc(s.example.endpoint || "")} <code>${esc(s.example.target || "")}</code>` : ""}</td></tr>`),
  "no mismatches in this window", 4);
}

function renderFields(data) {
  tableRows("#fields", data.fields.map((f) =>
    `<tr data-field="${esc(f.field)}" class="pick"><td><code>${esc(f.field)}</code></td><td>${f.mismatches}</td>` +
    `<td>${pct(f.rate)}</td><td>${f.noise ? '<span class="badge">noise</span>' : ""}</td></tr>`),
  "no differences yet", 4);
  const extra = [];
  if (data.overflow.fields) extra.push(`${data.overflow.fields} more in fields past the cap`);
  data.warnings.forEach((w) => extra.push(`order changed ${w.count}× at ${w.field} (warning)`));
  (data.unapplied_rules || []).forEach((r) => extra.push(`rule ${r.path} has not applied to any ` +
    `difference${r.suggest ? ` (did you mean ${r.suggest}?)` : ""}`));
  document.getElementById("shadow-notes").textContent = extra.join(" · ");
  const rules = document.getElementById("suggested");
  rules.hidden = !data.suggested_rules;
  rules.querySelector("pre").textContent = data.suggested_rules || "";
}

// ------------------------------------------------------------------ samples

// Renders a JSON body line by line; every line knows its path (body.items[2].qty),
// and lines whose path (or an ancestor's) differs are highlighted.
function renderBody(text, marks) {
  let value;
  try { value = JSON.parse(text); } catch (e) {
    const cls = marks.get("body");
    return `<span class="${cls || ""}" data-path="body">${esc(text)}</span>`;
  }
  const out = [];
  const walk = (v, path, key, depth, comma, inherited) => {
    const cls = marks.get(path) || inherited;
    const pad = "  ".repeat(depth) + (key === null ? "" : JSON.stringify(key) + ": ");
    const line = (t, p) => out.push(`<span class="${cls}" data-path="${esc(p)}">${esc(t)}</span>`);
    if (Array.isArray(v) || (v && typeof v === "object")) {
      const [open, close] = Array.isArray(v) ? ["[", "]"] : ["{", "}"];
      const entries = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
      line(pad + open, path);
      entries.forEach(([k, x], i) => {
        const sub = Array.isArray(v) ? `${path}[${k}]` : `${path}.${k}`;
        walk(x, sub, Array.isArray(v) ? null : k, depth + 1, i < entries.length - 1, cls);
      });
      line("  ".repeat(depth) + close + (comma ? "," : ""), path);
    } else {
      line(pad + JSON.stringify(v) + (comma ? "," : ""), path);
    }
  };
  walk(value, "body", null, 0, false, "");
  return out.join("\n");
}

function renderSide(title, side, marks, differences, sent) {
  const head = [`<span class="${marks.get("status") || ""}" data-path="status">status ${esc(side.status ?? "–")}</span>`];
  differences.filter((d) => d.path.startsWith("header.")).forEach((d) => {
    const name = d.path.slice(7);
    const pair = (side.headers || []).find(([k]) => k.toLowerCase() === name);
    head.push(`<span class="${marks.get(d.path)}" data-path="${esc(d.path)}">${esc(name)}: ${esc(pair ? pair[1] : "(absent)")}</span>`);
  });
  const failure = side.exception ? `<span class="diff">failed: ${esc(side.exception)}</span>\n` : "";
  const received = sent ? `<div class="sent">received: ${esc(sent.method)} <code>${esc(sent.target)}</code> · ` +
    (sent.headers || []).map(([k, v]) => `${esc(k)}: ${esc(v)}`).join(" · ") + "</div>" : "";
  return `<div><h4>${esc(title)} · ${esc(side.upstream)} · ${esc(side.duration_ms)} ms</h4>${received}` +
    `<pre class="body">${failure}${head.join("\n")}\n\n${renderBody(side.body || "", marks)}</pre></div>`;
}

// Order changes in keyed lists are reported at the list; a keyed item path
// (body.items[id=3].name) is marked on the side's body by its position there.
function renderSample(sample) {
  const marks = new Map();
  sample.differences.forEach((d) => marks.set(d.path, d.noise ? "noise" : "diff"));
  const kinds = sample.differences.map((d) =>
    `<code>${esc(d.path)}</code> ${esc(d.kind)}${d.noise ? ' <span class="badge">noise</span>' : ""}`).join(", ");
  const when = new Date(sample.at * 1000).toLocaleTimeString();
  const sent = sample.sent || {};
  return `<div class="sample"><div class="meta">${esc(when)} · <b>${esc(sample.outcome)}</b> · ` +
    `${esc(sample.endpoint || sample.request.method)} <code>${esc(sample.request.target)}</code>` +
    `${sample.error ? " · " + esc(sample.error) : ""}<br>differs at: ${kinds || "–"}</div>` +
    `<div class="sides">${renderSide("legacy", sample.legacy, marks, sample.differences, sent.legacy)}` +
    `${renderSide("new (adapted)", sample.new, marks, sample.differences, sent.new)}</div></div>`;
}

function renderSamples(data) {
  const f = shadowState.filter;
  document.getElementById("sample-filter").innerHTML = f
    ? `only ${esc(f.kind)} <code>${esc(f.value)}</code> <button id="filter-clear" type="button">show all</button>`
    : "all samples (click an endpoint, signature or field to filter)";
  const total = data.samples_total, from = total ? shadowState.offset + 1 : 0;
  const to = Math.min(total, shadowState.offset + SAMPLES_PER_PAGE);
  document.getElementById("samples-page").textContent = `${from}–${to} of ${total}`;
  document.getElementById("samples-prev").disabled = shadowState.offset === 0;
  document.getElementById("samples-next").disabled = to >= total;
  const key = [shadowState.window, shadowState.offset, f && f.value,
    data.samples.length ? data.samples[0].at : "none", total].join("|");
  if (key !== shadowState.lastKey) {  // re-render only on news, so a reader's selection stays put
    shadowState.lastKey = key;
    document.getElementById("samples").innerHTML = data.samples.map(renderSample).join("") ||
      '<p class="readonly">no mismatches stored</p>';
  }
}

// ------------------------------------------------------------------ the section

async function renderShadow() {
  const data = await getJSON(shadowUrl({ samples: SAMPLES_PER_PAGE, offset: shadowState.offset }));
  const c = data.counts;
  const summary = document.getElementById("shadow-summary");
  summary.textContent =
    `match rate ${pct(data.match_rate)} over ${data.compared} compared · ` +
    `match ${c.match} · mismatch ${c.mismatch} · error ${c.error} · dropped ${c.dropped} · skipped ${c.skipped}`;
  summary.className = data.match_rate === null ? "" : data.match_rate < 0.98 ? "bad" : "good";
  document.getElementById("trend").innerHTML = trendChart(data.trend);
  renderEndpoints(data);
  renderSignatures(data);
  renderFields(data);
  renderSamples(data);
  document.getElementById("shadow-export").href = shadowUrl({}, "/export");
  document.getElementById("shadow-reset").disabled = !token();
}

document.addEventListener("click", async (event) => {
  const target = event.target.closest("button, tr.pick");
  if (!target || !document.getElementById("shadow")) return;
  if (target.id === "filter-clear") return setFilter(null);
  if (target.id === "samples-prev") { shadowState.offset = Math.max(0, shadowState.offset - SAMPLES_PER_PAGE); return refresh(); }
  if (target.id === "samples-next") { shadowState.offset += SAMPLES_PER_PAGE; return refresh(); }
  if (target.id === "shadow-reset") {
    if (!window.confirm(`Forget every shadow result of ${onlyRoute}?`)) return;
    const result = await send("POST", `/api/routes/${encodeURIComponent(onlyRoute)}/shadow/reset`);
    showError(result.status >= 400 ? `reset shadow of ${onlyRoute}: ${result.data.error || result.status}` : "");
    shadowState.lastKey = null;
    return refresh();
  }
  if (target.dataset.endpoint) return setFilter("endpoint", target.dataset.endpoint);
  if (target.dataset.signature) return setFilter("signature", target.dataset.signature);
  if (target.dataset.field) return setFilter("field", target.dataset.field);
});

document.addEventListener("change", (event) => {
  if (event.target.id !== "window") return;
  shadowState.window = event.target.value;
  shadowState.offset = 0;
  shadowState.lastKey = null;
  refresh();
});
