// The awa console: plain JS, no build step. Every URL is relative to <base href>, which the
// server writes from its mount point (root_path), so the console works under any prefix.
"use strict";
const CSRF = document.querySelector('meta[name="csrf"]').content;
const BASE = new URL(document.baseURI).pathname;
const REL = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : "";
const $ = id => document.getElementById(id);
const f = (v, d) => v === null || v === undefined ? "" : Number(v).toFixed(d);
const esc = s => String(s ?? "").replace(/[&<>"']/g, c =>
  ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const json = v => JSON.stringify(v, null, 2);
let operator = false;

// Set innerHTML only when it changed: a refresh must not replace a button under the cursor.
function put(el, html) { if (el.dataset.last !== html) { el.innerHTML = html; el.dataset.last = html; } }

async function get(path) {
  const r = await fetch(path, {cache: "no-store", credentials: "same-origin"});
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.status);
  return body;
}

async function post(path, body) {
  const r = await fetch(path, {
    method: "POST", credentials: "same-origin",
    headers: {"content-type": "application/json", "x-csrf-token": CSRF},
    body: JSON.stringify(body || {}),
  });
  const out = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(out.error || r.status);
  return out;
}

function flash(text, ok) { const el = $("flash"); el.textContent = text; el.className = ok ? "done" : "error"; }

async function session() {
  const s = await get("api/session");
  operator = s.operator;
  $("login").hidden = operator || !s.login;
  $("session").textContent = operator ? "operator" : (s.login ? "read-only until you log in" : "read-only");
}

$("login").addEventListener("submit", async e => {
  e.preventDefault();
  try { await post("api/login", {token: $("token").value}); $("token").value = ""; flash("logged in", true); }
  catch (err) { flash("login failed: " + err.message, false); }
  await session(); await refresh();
});

document.addEventListener("click", async e => {
  const b = e.target.closest("button[data-action]");
  if (!b) return;
  const what = b.dataset.queue !== undefined
    ? {path: `api/queues/${encodeURIComponent(b.dataset.queue)}/${b.dataset.action}`, label: `queue ${b.dataset.queue}`}
    : {path: `api/jobs/${b.dataset.job}/${b.dataset.action}`, label: `job ${b.dataset.job}`};
  if (b.dataset.action === "cancel" && !confirm(`Cancel ${what.label}?`)) return;
  if (b.dataset.action === "discard" && !confirm(`Discard ${what.label}? It is deleted for good.`)) return;
  b.disabled = true;
  try {
    await post(what.path);
    flash(`${b.dataset.action}: ${what.label} done`, true);
    if (b.dataset.action === "discard" && view === "job") {  // nothing left to show here
      sessionStorage.setItem("awa-flash", `discard: ${what.label} done`);
      location.href = "jobs";
      return;
    }
  } catch (err) { flash(`${b.dataset.action} ${what.label} refused: ${err.message}`, false); }
  await refresh();
});

// ---- jobs filter: the form's fields <-> the URL's query <-> the API's filter.
const FILTER_FIELDS = ["state", "queue", "kind", "tag", "since", "until"];
const pad = n => String(n).padStart(2, "0");
// datetime-local speaks the browser's local time without a zone; the API wants an instant.
const toInstant = local => local ? new Date(local).toISOString() : "";
const toLocal = iso => {
  const d = new Date(iso);
  return isNaN(d) ? "" : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
};
function currentFilter() {
  const params = new URLSearchParams(location.search), out = {};
  for (const k of FILTER_FIELDS) if (params.get(k)) out[k] = params.get(k);
  return out;
}
$("filters").addEventListener("submit", e => {
  e.preventDefault();
  const params = new URLSearchParams();
  for (const el of $("filters").elements) {
    if (!el.name || !el.value.trim()) continue;
    params.set(el.name, el.type === "datetime-local" ? toInstant(el.value) : el.value.trim());
  }
  location.href = "jobs" + (params.toString() ? "?" + params : "");
});
// "Retry 37 failed jobs of queue mail?"
function describe(action, n, f) {
  let text = `${action[0].toUpperCase()}${action.slice(1)} ${n} ${f.state ? f.state + " " : ""}job${n === 1 ? "" : "s"}`;
  if (f.queue) text += ` of queue ${f.queue}`;
  if (f.kind) text += ` of kind ${f.kind}`;
  if (f.tag) text += ` tagged ${f.tag}`;
  if (f.since || f.until) text += ` finished ${f.since ? "from " + f.since : ""}${f.since && f.until ? " " : ""}${f.until ? "before " + f.until : ""}`;
  return text;
}
document.addEventListener("click", async e => {
  const b = e.target.closest("button[data-bulk]");
  if (!b) return;
  const action = b.dataset.bulk, filter = currentFilter();
  b.disabled = true;
  try {
    const {count} = await get(`api/jobs/bulk/${action}?` + new URLSearchParams(filter));
    if (count === 0) { flash(`${action}: no job matches this filter`, false); return; }
    if (!confirm(describe(action, count, filter) + "?")) return;
    const done = await post(`api/jobs/bulk/${action}`, {filter, confirmed: count});
    flash(`${action}: ${done.acted} of ${done.matched} jobs done`, true);
  } catch (err) { flash(`${action} refused: ${err.message}`, false); }
  finally { b.disabled = false; }
  await refresh();
});

const button = (attrs, action) => operator
  ? `<button ${attrs} data-action="${action}">${action}</button>` : "";
// What the admin layer accepts for each action (others would answer 409).
const RETRYABLE = new Set(["completed", "failed", "cancelled", "scheduled", "retryable"]);
const CANCELLABLE = new Set(["scheduled", "available", "retryable", "waiting_external", "running"]);
// Discard: any job but a running one (cancel it first).
const jobButtons = j => [RETRYABLE.has(j.state) ? button(`data-job="${j.id}"`, "retry") : "",
  CANCELLABLE.has(j.state) ? button(`data-job="${j.id}"`, "cancel") : "",
  j.state !== "running" ? button(`data-job="${j.id}"`, "discard") : ""].join(" ");

async function lanes() {
  const s = await get("api/lanes");
  const l = s.leader;
  const alive = s.leader_alive ? "<span class=ok>alive</span>" : "<span class=bad>NOT alive (data STALE)</span>";
  $("leader").innerHTML = l
    ? `leader <b>${esc(l.instance_id)}</b> since ${esc(l.won_at)} — lanes <b>${esc(l.mode)}</b> <small>${esc(l.mode_reason)}</small> — ${alive}`
    : "<span class=bad>no maintenance leader has run against this database yet</span>";
  $("age").innerHTML = s.data_age_s === null ? "no health persisted yet"
    : `health written ${f(s.data_age_s, 1)} s ago (stale after ${f(s.stale_after_s, 1)} s)` +
      (s.stale ? " — <b class=bad>STALE</b>: verdicts below are withheld" : "");
  put(document.querySelector("#branches tbody"), s.branches.map(b => {
    const load = b.interval_s ? ((b.last_duration_s || 0) + (b.last_lateness_s || 0)) / b.interval_s : null;
    const [cls, health] = s.stale ? ["stale", "STALE"] : b.delayed ? ["bad", "DELAYED"] : ["ok", "on time"];
    return `<tr class="${s.stale ? "stale" : b.delayed ? "delayed" : ""}"><td>${esc(b.lane)}</td><td>${esc(b.branch)}</td>
      <td>${f(b.interval_s, 3)}</td><td>${f(b.last_duration_s, 4)}</td><td>${f(load, 2)}</td>
      <td>${f(b.last_lateness_s, 4)}</td><td>${f(b.max_lateness_s, 4)}</td><td>${b.runs}</td><td>${b.errors}</td><td>${b.overruns}</td>
      <td class="${cls}">${health}</td><td>${esc(String(b.last_error ?? "").slice(0, 80))}</td></tr>`;
  }).join(""));
}

async function queues() {
  const s = await get("api/queues");
  put(document.querySelector("#queues tbody"), s.queues.map(q => {
    const q_ = esc(q.queue);
    const states = Object.entries(q.states).map(([k, v]) => `${esc(k)} ${v}`).join(", ");
    return `<tr data-queue="${q_}"><td>${q_}</td>
      <td class="${q.paused ? "bad" : "ok"}">${q.paused ? "PAUSED" : "running"}</td>
      <td>${q.depth}</td><td>${f(q.lag_s, 3)}</td><td>${states}</td>
      <td class="completed-per-s">${f(q.per_s.completed ?? 0, 1)}</td><td>${f(q.per_s.failed ?? 0, 1)}</td>
      <td>${button(`data-queue="${q_}"`, q.paused ? "resume" : "pause")}</td></tr>`;
  }).join(""));
  $("queues-age").textContent = s.stats_age_s === null ? "no queue stats persisted yet"
    : `depth, lag and jobs finished per second (over the leader's last queue_stats window) as of ${f(s.stats_age_s, 1)} s ago; pauses are current`;
}

let filled = false;  // the form shows the URL's filter once; refreshes leave the operator's edits alone
async function jobs() {
  const params = new URLSearchParams(location.search);
  for (const el of filled ? [] : $("filters").elements) {
    if (!el.name) continue;
    const v = params.get(el.name) || "";
    el.value = el.type === "datetime-local" ? (v ? toLocal(v) : "") : v;
  }
  filled = true;
  $("bulk").hidden = !operator;
  const s = await get("api/jobs?" + params);
  put(document.querySelector("#jobs tbody"), s.jobs.map(j => `<tr data-job="${j.id}">
    <td><a href="jobs/${j.id}">${j.id}</a></td><td>${esc(j.kind)}</td><td>${esc(j.queue)}</td>
    <td>${esc(j.state)}</td><td>${j.attempt}/${j.max_attempts}</td><td>${j.errors}</td>
    <td>${esc((j.tags || []).join(", "))}</td><td>${esc(j.run_at)}</td><td>${esc(j.finalized_at)}</td>
    <td>${jobButtons(j)}</td></tr>`).join(""));
  const older = $("older");
  older.hidden = s.next_before_id === null;
  if (s.next_before_id !== null) { params.set("before_id", s.next_before_id); older.href = "jobs?" + params; }
}

async function job(id) {
  const j = await get(`api/jobs/${id}`);
  $("job-title").textContent = `Job ${j.id} — ${j.kind} (${j.state})`;
  put($("job-actions"), jobButtons(j));
  const fields = ["state", "queue", "priority", "attempt", "max_attempts", "created_at", "run_at",
    "attempted_at", "heartbeat_at", "deadline_at", "finalized_at", "claimed_by", "unique_key", "tags"];
  put(document.querySelector("#job-fields tbody"),
    fields.map(k => `<tr><th>${k}</th><td id="job-${k}">${esc(Array.isArray(j[k]) ? j[k].join(", ") : j[k])}</td></tr>`).join(""));
  $("job-args").textContent = json(j.args);
  $("job-metadata").textContent = json(j.metadata);
  $("job-progress").textContent = json(j.progress);
  put(document.querySelector("#job-errors tbody"), (j.errors || []).map(e =>
    `<tr><td>${esc(e.attempt)}</td><td>${esc(e.at)}</td><td>${esc(e.kind)}</td><td>${esc(e.message ?? e.error)}</td></tr>`).join(""));
}

const jobMatch = REL.match(/^jobs\/(\d+)$/);
// cron, dead letters and events are console_ops.js's pages: nothing to render or poll here.
const OPS_PAGES = ["cron", "dead-letters", "events"];
const view = jobMatch ? "job" : REL === "queues" ? "queues" : REL === "jobs" ? "jobs"
  : OPS_PAGES.includes(REL) ? null : "lanes";
if (view) $("view-" + view).hidden = false;
for (const a of document.querySelectorAll("nav a")) if (view && a.dataset.view === view) a.classList.add("here");
const render = view ? {lanes, queues, jobs, job: () => job(jobMatch[1])}[view] : null;

async function refresh() {
  if (!render) return;
  try {
    await render();
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    $("updated").textContent = "refresh failed: " + e.message;
  }
}
const carried = sessionStorage.getItem("awa-flash");
if (carried) { sessionStorage.removeItem("awa-flash"); flash(carried, true); }
session().catch(e => { $("session").textContent = "session: " + e.message; }).then(refresh);
setInterval(refresh, 2000);
