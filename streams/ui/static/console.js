// Driftline console: fetches /api, draws hand-written SVG charts, listens to the alerts feed.
// No library and nothing from another origin: the page works offline.
"use strict";

const REFRESH_MS = 5000;
const MAX_FEED = 200;
const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#2563eb", "#d92d20", "#1f9d55", "#9333ea", "#d97706", "#0891b2", "#be185d",
  "#4d7c0f", "#64748b", "#7c2d12"];
const KINDS = ["data_drift", "prediction_drift", "concept_drift", "performance", "fairness",
  "data_quality"];

const state = { models: [], selected: null, detail: null, feed: [], seen: new Set() };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function when(t) {
  return new Date(t * 1000).toLocaleTimeString([], { hour12: false });
}

function num(v, digits = 3) {
  return v === null || v === undefined ? "–" : Number(v).toPrecision(digits);
}

function axis(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return a >= 10 || v === 0 ? String(Math.round(v)) : String(+v.toFixed(2));
}

async function getJSON(path) {
  const answer = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  const body = await answer.json();
  if (!answer.ok) throw new Error(body.error || `${path}: HTTP ${answer.status}`);
  return body;
}

function showError(message) {
  const box = document.getElementById("error");
  box.hidden = !message;
  box.textContent = message || "";
}

// -- models --------------------------------------------------------------------------------
function statusOf(model) {
  return (model.health && model.health.status) || "no data";
}

function renderModels() {
  const list = document.getElementById("models");
  list.replaceChildren(...state.models.map((m) => {
    const champion = m.aliases.champion ? `champion v${m.aliases.champion}` : "no champion";
    const active = m.health ? (m.health.active || []).length : 0;
    const routing = m.routing.mode === "off" ? "" :
      ` · ${m.routing.mode}${m.routing.mode === "canary" ? ` ${m.routing.percent}%` : ""}`;
    return el("li", {
      "data-model": m.name,
      class: m.name === state.selected ? "selected" : "",
      onclick: () => select(m.name),
    },
    el("div", { class: "name", text: m.name }),
    el("div", { class: "meta" },
      el("span", { class: `badge ${statusOf(m)}`, text: statusOf(m) }),
      ` ${champion}${routing} · ${active} active`));
  }));
  const filter = document.getElementById("filter-model");
  const chosen = filter.value;
  filter.replaceChildren(el("option", { value: "", text: "all" }),
    ...state.models.map((m) => el("option", { value: m.name, text: m.name })));
  filter.value = chosen;
}

async function loadModels() {
  state.models = await getJSON("/api/models");
  if (!state.selected || !state.models.some((m) => m.name === state.selected)) {
    const wanted = decodeURIComponent(location.hash.replace(/^#model=/, ""));
    const found = state.models.find((m) => m.name === wanted) || state.models[0];
    state.selected = found ? found.name : null;
  }
  renderModels();
}

function select(name) {
  state.selected = name;
  history.replaceState(null, "", `#model=${encodeURIComponent(name)}`);
  renderModels();
  refreshDetail();
}

// -- charts --------------------------------------------------------------------------------
// series: [{name, points: [[t, v], ...]}]; marks: [{t, kind, label}] (kind: promote,
// rollback, served, alert, other). Time in UNIX seconds.
function chart(title, id, series, marks, opts = {}) {
  const W = 520, H = 200, L = 44, R = 10, T = 12, B = 22;
  const fig = el("figure", { "data-chart": id }, el("figcaption", { text: title }));
  const drawn = series.filter((s) => s.points.length > 0);
  const all = drawn.flatMap((s) => s.points);
  if (all.length < 2) {
    fig.append(el("div", { class: "nodata", text: "waiting for monitoring points" }));
    return fig;
  }
  const ts = all.map((p) => p[0]);
  let t0 = Math.min(...ts), t1 = Math.max(...ts);
  if (t1 === t0) t1 = t0 + 1;
  const vs = all.map((p) => p[1]);
  let v0 = opts.min !== undefined ? Math.min(opts.min, ...vs) : Math.min(...vs);
  let v1 = opts.max !== undefined ? Math.max(opts.max, ...vs) : Math.max(...vs);
  if (v1 === v0) { v1 = v0 + 1; }
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - (v - v0) / (v1 - v0)) * (H - T - B);
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": title });
  for (let i = 0; i <= 4; i++) {
    const v = v0 + ((v1 - v0) * i) / 4;
    root.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    const label = svg("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end" });
    label.textContent = axis(v);
    root.append(label);
  }
  for (let i = 0; i <= 3; i++) {
    const t = t0 + ((t1 - t0) * i) / 3;
    const label = svg("text", { x: x(t), y: H - 6, "text-anchor": i === 0 ? "start" :
      i === 3 ? "end" : "middle" });
    label.textContent = when(t);
    root.append(label);
  }
  root.append(svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
  root.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  if (opts.threshold !== undefined && opts.threshold >= v0 && opts.threshold <= v1) {
    root.append(svg("line", { class: "mark-other", x1: L, x2: W - R,
      y1: y(opts.threshold), y2: y(opts.threshold) }));
  }
  for (const m of marks) {
    if (m.t < t0 || m.t > t1) continue;
    if (m.kind === "alert") {
      const tick = svg("path", { class: "mark-alert",
        d: `M${x(m.t) - 4},${T - 8} L${x(m.t) + 4},${T - 8} L${x(m.t)},${T} Z` });
      tick.append(Object.assign(svg("title", {}), { textContent: m.label }));
      root.append(tick);
    } else {
      const cls = ["promote", "rollback", "served"].includes(m.kind) ? m.kind : "other";
      const line = svg("line", { class: `mark-${cls}`, x1: x(m.t), x2: x(m.t), y1: T,
        y2: H - B, "data-mark": m.kind });
      line.append(Object.assign(svg("title", {}), { textContent: m.label }));
      root.append(line);
      const label = svg("text", { x: x(m.t) + 3, y: T + 9 });
      label.textContent = m.short || m.kind;
      root.append(label);
    }
  }
  const legend = el("div", { class: "legend" });
  const hues = new Map();  // an estimate takes the colour of the realized figure it estimates
  drawn.forEach((s) => {
    const base = s.name.replace(/^est\. /, "");
    if (!hues.has(base)) hues.set(base, COLORS[hues.size % COLORS.length]);
    const color = hues.get(base);
    const d = s.points.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`)
      .join(" ");
    const estimated = s.name.startsWith("est. ");
    root.append(svg("path", { class: estimated ? "series estimated" : "series", d,
      stroke: color, "data-series": s.name }));
    legend.append(el("span", {}, el("i", { style: `background:${color}` }), s.name));
  });
  fig.append(root, legend);
  return fig;
}

function byScope(points, pick) {
  const out = new Map();
  for (const p of points) {
    for (const [scope, values] of Object.entries(pick(p) || {})) {
      for (const [name, v] of Object.entries(values)) {
        if (v === null || v === undefined) continue;
        const key = `${name} ${scope}`;
        if (!out.has(key)) out.set(key, []);
        out.get(key).push([p.at, v]);
      }
    }
  }
  return [...out.entries()].map(([name, pts]) => ({ name, points: pts }));
}

function throughput(points) {
  const out = [];
  for (let i = 1; i < points.length; i++) {
    const dt = points[i].at - points[i - 1].at;
    const dn = points[i].events - points[i - 1].events;
    if (dt > 0 && dn >= 0 && points[i].worker === points[i - 1].worker) {
      out.push([points[i].at, dn / dt]);
    }
  }
  return [{ name: "events/s", points: out }];
}

function marksOf(detail) {
  const marks = detail.changes.map((c) => ({
    t: c.at, kind: c.action, short: `${c.action} v${c.version}`,
    label: `${c.action} v${c.version}${c.previous ? ` (from v${c.previous})` : ""} ${c.reason || ""}`,
  }));
  for (const a of detail.alerts) {
    marks.push({ t: a.at, kind: "alert",
      label: `${a.kind} ${a.feature || ""} ${a.detector} ${num(a.statistic)} > ${num(a.threshold)}` });
  }
  return marks;
}

function charts(detail) {
  const points = detail.points;
  const marks = marksOf(detail);
  // realized (rolling, labelled) and estimated without labels (dashed), per scope
  const metrics = byScope(points, (p) => Object.fromEntries(Object.entries(p.metrics || {})
    .map(([scope, m]) => [scope, { accuracy: m.accuracy, f1: m.f1,
      "est. accuracy": (m.estimated || {}).accuracy, "est. f1": (m.estimated || {}).f1 }])));
  const drift = [];
  const features = new Map();
  for (const p of points) {
    const champ = ((p.drift || {}).features || {}).champion || {};
    for (const [name, s] of Object.entries(champ)) {
      if (s.psi === null || s.psi === undefined) continue;
      if (!features.has(name)) features.set(name, []);
      features.get(name).push([p.at, s.psi]);
    }
  }
  for (const [name, pts] of features) drift.push({ name, points: pts });
  const fairness = byScope(points, (p) => Object.fromEntries(Object.entries(p.groups || {})
    .map(([scope, g]) => [scope, { dp_gap: g.dp_gap, eo_gap: g.eo_gap }])));
  return el("div", { class: "charts" },
    chart("Throughput (events/s)", "throughput", throughput(points), marks, { min: 0 }),
    chart("Metrics per version (dashed: estimated without labels)", "metrics", metrics, marks,
      { min: 0, max: 1 }),
    chart("Drift: PSI per feature (champion)", "drift", drift, marks,
      { min: 0, threshold: 0.2 }),
    chart("Fairness gaps", "fairness", fairness, marks, { min: 0 }));
}

// -- one model -----------------------------------------------------------------------------
// What explains a finding (details.explained_by: features and their shares; a multivariate
// finding's details.columns), as the report and `driftline alerts` write it.
function explained(details) {
  const shares = (pairs) => pairs.map(([name, share]) => `${name} ${num(share, 2)}`).join(", ");
  if (Array.isArray(details.explained_by)) {
    return details.explained_by.length ? shares(details.explained_by) : "no feature drifted";
  }
  if (details.test === "multivariate" && Array.isArray(details.columns)) {
    return `columns ${shares(details.columns)}`;
  }
  return "";
}

function table(head, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { text: h })))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c) => el("td", { text: c }))))));
}

function renderDetail() {
  const main = document.getElementById("model");
  const d = state.detail;
  if (!d) {
    main.replaceChildren(el("p", { class: "empty", text: state.models.length ?
      "Select a model." : "No model in the registry yet." }));
    return;
  }
  const status = statusOf(d);
  const aliases = Object.entries(d.aliases).map(([a, v]) =>
    el("span", { class: "chip alias", text: `${a}: v${v}` }));
  const versions = d.versions.map((v) => el("span", { class: "chip", text: `v${v}` }));
  const routing = d.routing.mode === "off" ? "routing: champion only" :
    `routing: ${d.routing.mode}${d.routing.mode === "canary" ? ` ${d.routing.percent}%` : ""}`;
  const stage = d.stage && d.stage.phase ? ` · stage: ${d.stage.phase}` +
    (d.stage.version ? ` v${d.stage.version}` : "") : "";
  const h = d.health;
  const last = d.points.length ? d.points[d.points.length - 1] : null;
  const serving = last && last.champion ? ` · serving v${last.champion}` : "";
  const counters = h ? `${h.events} events · ${h.labels} labels${serving} · monitors on ` +
    `${h.worker || "?"} at ${when(h.at)}` : "no monitoring data yet";
  const active = (h && h.active) || [];
  const findings = active.length ? table(
    ["kind", "version", "feature", "detector", "statistic", "threshold", "explained by"],
    active.map((f) => [f.kind, `v${(f.details || {}).version || "?"}`, f.feature || "",
      f.detector, num(f.statistic), num(f.threshold), explained(f.details || {})]))
    : el("p", { class: "meta", text: "No active finding." });
  const figures = latestFigures(last);
  const changes = d.changes.length ? table(["time", "action", "version", "previous", "reason"],
    [...d.changes].reverse().map((c) => [new Date(c.at * 1000).toLocaleString(), c.action,
      `v${c.version}`, c.previous ? `v${c.previous}` : "", c.reason || ""]))
    : el("p", { class: "meta", text: "No promotion or rollback yet." });
  const records = d.records.length ? table(["time", "kind", "version", "detail"],
    d.records.map((r) => [r.at ? new Date(r.at).toLocaleString() : "", r.kind,
      r.version ? `v${r.version}` : "", describe(r)]))
    : el("p", { class: "meta", text: "No retrain, gate, shadow test or promotion yet." });
  main.replaceChildren(
    el("div", { class: "head", "data-selected": d.name },
      el("span", { class: "name", text: d.name }),
      el("span", { class: `badge ${status}`, text: status }),
      el("a", { href: `/report/${encodeURIComponent(d.name)}`, target: "_blank",
        text: "full HTML report" })),
    el("p", { class: "meta", text: `${routing}${stage} · ${counters}` }),
    el("div", {}, ...aliases, ...versions),
    el("h3", { text: `Active findings (${active.length})` }), findings,
    el("h3", { text: "Latest metrics: realized and estimated" }), figures,
    el("h3", { text: "Timelines" }),
    el("p", { class: "meta", text: `${d.points.length} monitoring points; dashed lines: ` +
      "promotions (green) and rollbacks (orange); red ticks: alerts" }),
    charts(d),
    el("h3", { text: `Version changes (${d.changes.length})` }), changes,
    el("h3", { text: "Retrain, gates, shadow and promotion history" }), records);
}

// The last point's rolling figures and, beside them, the estimate and its band.
function latestFigures(point) {
  const scopes = Object.entries((point && point.metrics) || {});
  if (!scopes.length) return el("p", { class: "meta", text: "No metrics yet." });
  const band = (e, m) => (e && e[m] !== null && e[m] !== undefined ?
    `${num(e[m])} [${num(e[`${m}_low`])}–${num(e[`${m}_high`])}]` : "–");
  return el("div", { "data-figures": "" }, table(
    ["scope", "labels", "rolling acc.", "rolling F1", "est. acc.", "est. F1"],
    scopes.map(([scope, m]) => [scope, String(m.labels || 0), num(m.accuracy), num(m.f1),
      band(m.estimated, "accuracy"), band(m.estimated, "f1")])));
}

function describe(r) {
  const skip = new Set(["id", "at", "model", "kind", "version", "gates"]);
  return Object.entries(r).filter(([k, v]) => !skip.has(k) && typeof v !== "object")
    .map(([k, v]) => `${k}=${v}`).join(" ").slice(0, 160);
}

async function refreshDetail() {
  if (!state.selected) { state.detail = null; renderDetail(); return; }
  const name = state.selected;
  const detail = await getJSON(`/api/models/${encodeURIComponent(name)}`);
  if (name === state.selected) { state.detail = detail; renderDetail(); }
}

// -- the alerts feed -----------------------------------------------------------------------
function alertItem(a, fresh) {
  const li = el("li", { "data-alert-id": a.alert_id || a.stream_id, "data-stream-id": a.stream_id,
    "data-model": a.model, "data-kind": a.kind, "data-shown-at": String(Date.now()),
    class: fresh ? "fresh" : "" },
  el("div", {}, el("span", { class: "kind", text: a.kind }),
    `${(a.details || {}).estimated ? " (estimated, no labels)" : ""} · ${a.model} v${a.version}`),
  el("div", { class: "meta", text: `${a.feature ? a.feature + " · " : ""}${a.detector} ` +
    `${num(a.statistic)} > ${num(a.threshold)} · ${when(a.at)}` }));
  return li;
}

function feedFilter() {
  return { model: document.getElementById("filter-model").value,
    kind: document.getElementById("filter-kind").value };
}

function renderFeed() {
  const { model, kind } = feedFilter();
  const shown = state.feed.filter((a) => (!model || a.model === model) && (!kind || a.kind === kind));
  document.getElementById("alerts").replaceChildren(...shown.map((a) => alertItem(a, false)));
}

function addAlert(a) {
  if (state.seen.has(a.stream_id)) return;
  state.seen.add(a.stream_id);
  state.feed.unshift(a);
  state.feed.length = Math.min(state.feed.length, MAX_FEED);
  const { model, kind } = feedFilter();
  if ((!model || a.model === model) && (!kind || a.kind === kind)) {
    document.getElementById("alerts").prepend(alertItem(a, true));
  }
  if (a.model === state.selected) refreshDetail().catch((e) => showError(e.message));
}

function openFeed(after) {
  const url = `/api/alerts/stream${after ? `?after=${encodeURIComponent(after)}` : ""}`;
  const source = new EventSource(url);
  const badge = document.getElementById("feed-state");
  source.addEventListener("open", () => {
    badge.dataset.state = "live";
    badge.textContent = "feed: live";
  });
  source.addEventListener("alert", (e) => addAlert(JSON.parse(e.data)));
  source.addEventListener("error", () => {
    badge.dataset.state = "offline";
    badge.textContent = "feed: reconnecting";
  });
}

// -- start ---------------------------------------------------------------------------------
async function refresh() {
  try {
    await loadModels();
    await refreshDetail();
    document.getElementById("updated").textContent = `updated ${when(Date.now() / 1000)}`;
    showError("");
  } catch (e) {
    showError(e.message);
  }
}

async function start() {
  const kinds = document.getElementById("filter-kind");
  kinds.append(...KINDS.map((k) => el("option", { value: k, text: k })));
  kinds.addEventListener("change", renderFeed);
  document.getElementById("filter-model").addEventListener("change", renderFeed);
  let after = null;
  try {
    const recent = await getJSON("/api/alerts?count=50");
    for (const a of recent) { state.seen.add(a.stream_id); state.feed.push(a); }
    // none yet: from the stream's very start, so that the first one raised is not missed
    after = recent.length ? recent[0].stream_id : "0-0";
    renderFeed();
  } catch (e) {
    showError(e.message);
  }
  // from the newest alert listed on: none raised meanwhile is missed, none shown twice
  openFeed(after);
  await refresh();
  setInterval(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", start);
