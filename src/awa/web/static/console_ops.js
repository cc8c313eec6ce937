// The console's operator pages (ADR 033): lane history charts (inline SVG), cron, dead
// letters, events outbox. Plain JS, no build step, no CDN. Loaded after console.js, which
// owns the lanes/queues/jobs views and the helpers both use (CSRF, BASE, REL, esc, put, get,
// post: one copy); everything defined here lives inside one function, so it adds no global
// name. URLs are relative to <base href> like the rest of the console.
(() => {
  "use strict";
  const VIEWS = {"cron": "cron", "dead-letters": "dlq", "events": "events"};
  const view = VIEWS[REL] || (REL === "" || REL === "index.html" ? "lanes" : null);
  if (view === null) return;  // queues, jobs, job detail: console.js alone
  const byId = id => document.getElementById(id);
  const num = (v, d) => v === null || v === undefined ? "" : Number(v).toFixed(d);
  const when = v => v ? esc(String(v).replace("T", " ").slice(0, 19)) : "";
  let operator = false;

  function flash(text, ok) {
    const el = byId("flash");
    if (el) { el.textContent = text; el.className = ok ? "done" : "error"; }
  }

  function section(id, html, parent) {
    let el = byId(id);
    if (!el) {
      el = document.createElement("section");
      el.id = id;
      el.innerHTML = html;
      if (parent) parent.appendChild(el);
      else document.body.insertBefore(el, byId("updated"));
    }
    return el;
  }

  // ------------------------------------------------------------- lane history charts
  const W = 320, H = 90, PAD = 4;
  let history = null, fetchedAt = 0;
  const SERIES = [["last_lateness_s", "lateness"], ["max_lateness_s", "worst"], ["last_duration_s", "duration"]];

  function chart(b, stale) {
    const s = b.samples;
    if (!s.length) return "";
    const t = s.map(p => Date.parse(p.sampled_at));
    const t0 = t[0], span = Math.max(t[t.length - 1] - t0, 1);
    const top = Math.max(1e-6, ...s.flatMap(p => SERIES.map(([k]) => p[k] || 0)));
    const x = i => (PAD + (W - 2 * PAD) * (t[i] - t0) / span).toFixed(1);
    const y = v => (H - PAD - (H - 2 * PAD) * Math.min(v, top) / top).toFixed(1);
    const lines = SERIES.map(([k, cls]) => {
      const pts = s.map((p, i) => p[k] === null ? null : `${x(i)},${y(p[k])}`).filter(Boolean);
      return `<polyline class="${cls}" data-n="${pts.length}" points="${pts.join(" ")}"/>`;
    }).join("");
    const marks = s.map((p, i) => (p.delayed ? `<rect class="delayed" x="${x(i) - 2}" y="0" width="4" height="${H}"/>` : "") +
      (p.overruns ? `<circle class="overrun" cx="${x(i)}" cy="${PAD + 2}" r="3"><title>${p.overruns} overrun(s)</title></circle>` : "")).join("");
    const interval = s[s.length - 1].interval_s;
    const last = s[s.length - 1];
    const verdict = stale ? "STALE" : last.delayed ? "DELAYED" : "on time";
    const cls = stale ? "stale" : last.delayed ? "bad" : "ok";
    return `<div class="chart ${stale ? "stale" : ""}" data-branch="${esc(b.branch)}">
      <div><b>${esc(b.branch)}</b> <small>${esc(b.lane)}, every ${num(interval, 3)} s</small>
      <span class="${cls}">${verdict}</span></div>
      <svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img"
        aria-label="${esc(b.branch)}: lateness, worst lateness and duration">${marks}${lines}</svg>
      <div><small>max ${num(top, 4)} s · ${s.length} samples · ${when(last.sampled_at)}</small></div></div>`;
  }

  async function lanes() {
    const host = section("lane-history", `<h2>History</h2>
      <p><small>per branch: <span class="k-lateness">lateness</span>, <span class="k-worst">worst lateness</span>,
      <span class="k-duration">duration</span> (s); red bars: DELAYED samples; dots: overruns</small></p>
      <p id="history-age"></p><div id="charts"></div>`, byId("view-lanes"));
    // The samples change once per health write: fetch them no more often than that (the
    // whole ring is ~1,700 samples), but at least every 10 s so the age and STALE stay true.
    const now = Date.now();
    const every = history === null ? 0 : Math.min(10, Math.max(2, history.health_interval_s || 0) - 0.1);
    if (now - fetchedAt >= 1000 * every) {
      history = await get("api/lanes/history");
      fetchedAt = now;
    }
    const h = history;
    const newest = h.branches.flatMap(b => b.samples.map(p => p.sampled_at)).sort().pop();
    const alive = h.leader_alive ? "<span class=ok>leader alive</span>"
      : "<span class=bad>leader NOT alive</span>";
    put(byId("history-age"), newest === undefined ? "no health samples persisted yet"
      : `samples up to ${when(newest)} (${num(h.data_age_s, 1)} s ago; health every ${num(h.health_interval_s, 2)} s` +
        ` from the ${esc(h.health_interval_source)}) — ${alive}` + (h.stale ? " — <b class=stale>STALE</b>" : ""));
    put(byId("charts"), h.branches.map(b => chart(b, h.stale)).join(""));
    host.hidden = false;
  }

  // ---------------------------------------------------------------------- actions
  const button = (op, target, label, confirmText) => operator
    ? `<button data-op="${op}" data-target="${esc(target)}"${confirmText ? ` data-confirm="${esc(confirmText)}"` : ""}>${label}</button>` : "";

  const PATHS = {
    "cron-pause": t => `api/cron/${encodeURIComponent(t)}/pause`,
    "cron-resume": t => `api/cron/${encodeURIComponent(t)}/resume`,
    "cron-run": t => `api/cron/${encodeURIComponent(t)}/run`,
    "dlq-retry": t => `api/dead-letters/${t}/retry`,
    "dlq-purge": t => `api/dead-letters/${t}/purge`,
    "dlq-purge-all": () => "api/dead-letters/purge",
  };

  document.addEventListener("click", async e => {
    const b = e.target.closest("button[data-op]");
    if (!b || !PATHS[b.dataset.op]) return;
    if (b.dataset.confirm && !confirm(b.dataset.confirm)) return;
    const body = b.dataset.op === "dlq-purge-all" ? {confirm: "purge"} : {};
    b.disabled = true;
    try {
      const out = await post(PATHS[b.dataset.op](b.dataset.target), body);
      const extra = out.job ? ` (job ${out.job.id})` : out.purged !== undefined ? ` (${out.purged} purged)` : "";
      flash(`${b.textContent} ${b.dataset.target}: done${extra}`, true);
    } catch (err) { flash(`${b.textContent} ${b.dataset.target} refused: ${err.message}`, false); }
    await refresh();
  });

  // ------------------------------------------------------------------------- cron
  async function cron() {
    section("view-cron", `<h1>Cron schedules</h1>
      <table id="cron"><thead><tr><th>schedule</th><th>expression</th><th>kind → queue</th><th>state</th>
      <th>next fire</th><th>last fire</th><th>fired</th><th>misses</th><th>last miss</th><th></th></tr></thead>
      <tbody></tbody></table>`);
    const s = await get("api/cron");
    put(document.querySelector("#cron tbody"), s.schedules.map(c => {
      const state = c.orphaned_at ? ["bad", "orphaned"] : c.operator_paused ? ["bad", "PAUSED (operator)"]
        : c.paused ? ["bad", "paused (in code)"] : ["ok", "active"];
      const n = esc(c.name);
      return `<tr data-schedule="${n}"><td>${n}</td><td>${esc(c.expression)} <small>${esc(c.timezone)}</small></td>
        <td>${esc(c.kind)} → ${esc(c.queue)}</td><td class="${state[0]}">${state[1]}</td>
        <td>${when(c.next_fire_at)}</td><td>${when(c.last_fire_at)}</td><td>${c.fired_total}</td>
        <td>${c.missed_total}</td><td>${when(c.last_missed_at)}</td>
        <td>${button(c.operator_paused ? "cron-resume" : "cron-pause", c.name, c.operator_paused ? "resume" : "pause")}
        ${button("cron-run", c.name, "run now", `Enqueue one run of ${c.name} now?`)}</td></tr>`;
    }).join("") || "<tr><td colspan=10>no cron schedules</td></tr>");
  }

  // ----------------------------------------------------------------- dead letters
  async function dlq() {
    section("view-dlq", `<h1>Dead letters</h1>
      <form id="dlq-filters" action="dead-letters" method="get"><input name="queue" placeholder="queue">
      <input name="kind" placeholder="kind"> <label><input type="checkbox" name="retried" value="1"> include retried</label>
      <button type="submit">filter</button> <span id="dlq-purge-all"></span></form>
      <table id="dlq"><thead><tr><th>id</th><th>kind</th><th>queue</th><th>attempt</th><th>dead at</th>
      <th>errors</th><th>reason</th><th>retried as</th><th></th></tr></thead><tbody></tbody></table>
      <a id="dlq-older" hidden>older →</a>`);
    const params = new URLSearchParams(location.search);
    for (const el of byId("dlq-filters").elements) {
      if (el.type === "checkbox") el.checked = params.get(el.name) === "1";
      else if (el.name) el.value = params.get(el.name) || "";
    }
    const s = await get("api/dead-letters?" + params);
    put(byId("dlq-purge-all"), button("dlq-purge-all", "every dead letter", "purge all",
      "Purge EVERY dead letter, of every queue, for good?"));
    put(document.querySelector("#dlq tbody"), s.letters.map(d => `<tr data-letter="${d.id}">
      <td>${d.id}</td><td>${esc(d.kind)}</td><td>${esc(d.queue)}</td><td>${d.attempt}/${d.max_attempts}</td>
      <td>${when(d.dead_at)}</td><td>${d.errors}</td><td>${esc(String(d.reason ?? "").slice(0, 80))}</td>
      <td>${d.retried_job_id ? `<a href="jobs/${d.retried_job_id}">${d.retried_job_id}</a>` : ""}</td>
      <td>${d.retried_job_id ? "" : button("dlq-retry", d.id, "retry")}
      ${button("dlq-purge", d.id, "purge", `Purge dead letter ${d.id} for good?`)}</td></tr>`).join("")
      || "<tr><td colspan=9>no dead letters</td></tr>");
    const older = byId("dlq-older");
    older.hidden = s.next_before_id === null;
    if (s.next_before_id !== null) { params.set("before_id", s.next_before_id); older.href = "dead-letters?" + params; }
  }

  // ----------------------------------------------------------------------- events
  async function events() {
    section("view-events", `<h1>Events outbox</h1><h2>Sinks</h2>
      <table id="sinks"><thead><tr><th>sink</th><th>kinds</th><th>backlog</th><th>parked</th><th>oldest outstanding</th>
      <th>failures</th><th>retry at</th><th>delivered</th><th>last error</th></tr></thead><tbody></tbody></table>
      <h2>Recent events</h2><table id="events"><thead><tr><th>id</th><th>kind</th><th>at</th><th>job</th>
      <th>schedule</th><th>deliveries</th></tr></thead><tbody></tbody></table><a id="events-older" hidden>older →</a>`);
    const params = new URLSearchParams(location.search);
    const s = await get("api/events?" + params);
    put(document.querySelector("#sinks tbody"), s.sinks.map(k => `<tr data-sink="${esc(k.sink)}">
      <td>${esc(k.sink)}</td><td>${esc((k.kinds || []).join(", ") || "all")}</td><td>${k.pending}</td>
      <td class="${k.parked ? "bad" : ""}">${k.parked}</td><td>${when(k.oldest_outstanding)}</td>
      <td class="${k.failures ? "bad" : ""}">${k.failures}</td><td>${when(k.retry_at)}</td><td>${k.delivered_total}</td>
      <td>${esc(String(k.last_error ?? "").slice(0, 80))}</td></tr>`).join("")
      || "<tr><td colspan=9>no sinks registered</td></tr>");
    put(document.querySelector("#events tbody"), s.events.map(ev => {
      const deliveries = (ev.deliveries || []).map(d => `${esc(d.sink)}: ${d.delivered_at ? "delivered"
        : d.parked_at ? "<span class=bad>parked</span>" : `pending (${d.attempts} attempt(s))`}`).join(", ");
      return `<tr data-event="${ev.id}"><td>${ev.id}</td><td>${esc(ev.kind)}</td><td>${when(ev.occurred_at)}</td>
        <td>${ev.job_id ? `<a href="jobs/${ev.job_id}">${ev.job_id}</a>` : ""}</td><td>${esc(ev.schedule)}</td>
        <td>${deliveries || "<small>no sink</small>"}</td></tr>`;
    }).join("") || "<tr><td colspan=6>no events</td></tr>");
    const older = byId("events-older");
    older.hidden = s.next_before_id === null;
    if (s.next_before_id !== null) { params.set("before_id", s.next_before_id); older.href = "events?" + params; }
  }

  // -------------------------------------------------------------------- the loop
  if (view !== "lanes") {  // console.js shows the lanes view for a path it does not know
    const lanesView = byId("view-lanes");
    if (lanesView) lanesView.hidden = true;
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("here", a.dataset.view === view);
  }
  const render = {lanes, cron, dlq, events}[view];

  async function refresh() {
    try {
      const s = await get("api/session");
      operator = s.operator;
      await render();
    } catch (e) {
      flash("refresh failed: " + e.message, false);
    }
  }
  refresh();
  setInterval(refresh, 2000);
})();
