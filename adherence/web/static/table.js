/* The board's table mode for a large center: one row per agent, filtered, sorted (worst first) and paged by
 * the server (/api/board/table). A poll sends the last ETag and gets 304 when nothing on the page changed;
 * the seconds in state and out of adherence are counted here from the rows' instants. */
"use strict";

(function () {
  var el = Adh.el;
  var refreshMs = Number(document.body.dataset.refresh) || 3000;
  var params = new URLSearchParams(location.search);
  var state = {
    team: params.get("team") || "", onlyOut: params.get("out_of_adherence") === "true",
    sort: params.get("sort") || "out", q: params.get("q") || "", offset: Number(params.get("offset")) || 0,
    limit: Number(params.get("limit")) || 100, etag: null, skewMs: 0, data: null, timer: null, offered: null,
  };
  var teamSelect = document.getElementById("team-filter");
  var outBox = document.getElementById("out-filter");
  var sortSel = document.getElementById("sort");
  var search = document.getElementById("search");
  var sizeSel = document.getElementById("page-size");
  outBox.checked = state.onlyOut;
  sortSel.value = state.sort;
  search.value = state.q;
  sizeSel.value = String(state.limit);

  function query() {
    var p = new URLSearchParams();
    if (state.team) p.set("team", state.team);
    if (state.onlyOut) p.set("out_of_adherence", "true");
    if (state.sort !== "out") p.set("sort", state.sort);
    if (state.q) p.set("q", state.q);
    if (state.offset) p.set("offset", String(state.offset));
    if (state.limit !== 100) p.set("limit", String(state.limit));
    return p;
  }

  function changed(resetPage) {
    if (resetPage) state.offset = 0;
    state.etag = null;
    var p = query();
    p.set("view", "table");
    history.replaceState(null, "", location.pathname + "?" + p.toString());
    poll();
  }

  teamSelect.addEventListener("change", function () { state.team = teamSelect.value; changed(true); });
  outBox.addEventListener("change", function () { state.onlyOut = outBox.checked; changed(true); });
  sortSel.addEventListener("change", function () { state.sort = sortSel.value; changed(true); });
  sizeSel.addEventListener("change", function () { state.limit = Number(sizeSel.value); changed(true); });
  var typing = null;
  search.addEventListener("input", function () {
    clearTimeout(typing);
    typing = setTimeout(function () { state.q = search.value.trim(); changed(true); }, 300);
  });
  document.getElementById("prev-page").addEventListener("click", function () {
    state.offset = Math.max(0, state.offset - state.limit); changed(false);
  });
  document.getElementById("next-page").addEventListener("click", function () {
    if (state.data && state.offset + state.limit < state.data.total) { state.offset += state.limit; changed(false); }
  });

  function serverNow() { return Date.now() + state.skewMs; }
  function since(isoText) { return isoText ? Math.max(0, (serverNow() - Date.parse(isoText)) / 1000) : null; }

  function teamOptions(teams) {
    var want = [""].concat(teams).join("|");
    var have = Array.prototype.map.call(teamSelect.options, function (o) { return o.value; }).join("|");
    if (want === have) return;
    Adh.clear(teamSelect);
    teamSelect.appendChild(el("option", { value: "", text: "All teams" }));
    teams.forEach(function (t) { teamSelect.appendChild(el("option", { value: t, text: t })); });
    teamSelect.value = state.team;
  }

  function render(d) {
    var body = document.querySelector("#agents-table tbody");
    var rows = d.agents.map(function (a) {
      var out = !a.in_adherence;
      return el("tr", { class: out ? "out" : "in", dataset: { agent: a.agent, state: out ? "out" : "in" } },
        el("td", { text: a.team || "" }),
        el("td", null, el("a", { href: "/agents/" + encodeURIComponent(a.agent) + "?date=" + a.day, text: a.name })),
        el("td", { class: "activity", text: a.activity || "Not seen" }),
        el("td", { text: a.task_state && a.task_state !== "none" ? a.task_state : "" }),
        el("td", { text: a.scheduled_activity || "—" }),
        el("td", { class: "timer", dataset: { since: a.since || "" }, text: Adh.duration(since(a.since)) }),
        el("td", { class: "timer out-for", dataset: { since: a.out_since || "" },
                   text: a.out_since ? "✗ " + Adh.duration(since(a.out_since)) : "✓" }),
        el("td", { class: "today-pct", text: Adh.pct(a.today_percent) }),
        alerts(a));
    });
    Adh.clear(body);
    if (!rows.length) body.appendChild(el("tr", null, el("td", { colspan: "9", class: "empty", text: "No agent matches." })));
    rows.forEach(function (r) { body.appendChild(r); });
    document.getElementById("table-total").textContent = d.total.toLocaleString("en-US") + " agents";
    document.getElementById("out-count").textContent = d.out_of_adherence_count
      ? "✗ " + d.out_of_adherence_count.toLocaleString("en-US") + " out of adherence" : "✓ all in adherence";
    var last = Math.min(d.total, d.offset + d.agents.length);
    document.getElementById("page-info").textContent = (d.total ? (d.offset + 1).toLocaleString("en-US") + "–" +
      last.toLocaleString("en-US") : "0") + " of " +
      d.total.toLocaleString("en-US");
    document.getElementById("prev-page").disabled = d.offset === 0;
    document.getElementById("next-page").disabled = last >= d.total;
    teamOptions(d.teams);
    banner(d.feed);
  }

  function alerts(a) {
    var ids = a.open_exception_ids || [];
    var acked = ids.filter(function (id) { var s = AdhNotify.state().exceptions[id]; return s && s.acknowledged; });
    var todo = ids.filter(function (id) { return acked.indexOf(id) < 0; });
    return el("td", { class: "notify" },
      AdhNotify.agentBadge(a.agent),
      acked.length ? el("span", { class: "notify-badge acked", text: "👁 " + acked.length + " of " + ids.length + " acknowledged" }) : null,
      " ", AdhNotify.snoozeButton(a.agent, a.name, notifyChanged),
      todo.length && AdhNotify.canWrite()
        ? el("button", { type: "button", class: "ack", dataset: { agent: a.agent }, text: "👁 Ack…",
                         "aria-label": "Acknowledge the open exceptions of " + a.name,
                         onclick: function () { AdhNotify.openAck(todo, a.name, notifyChanged); } })
        : null);
  }

  var notifySeen = null;
  function notifyChanged() {
    return AdhNotify.load().then(function (st) {
      var seen = JSON.stringify([st.agents, st.exceptions, st.can_write]);
      if (seen !== notifySeen && state.data) render(state.data);
      notifySeen = seen;
    });
  }

  function banner(feed) {
    var node = document.getElementById("feed-banner");
    if (!feed || !feed.silent) { node.hidden = true; state.offered = null; return; }
    state.offered = feed.offer;
    document.getElementById("feed-text").textContent = "⚠ No record from Flex for " + Adh.duration(feed.silent_seconds) +
      " while " + feed.scheduled_agents + " agents are scheduled: the feed may be down.";
    node.hidden = false;
  }

  document.getElementById("feed-approve").addEventListener("click", function () {
    if (!state.offered) return;
    var by = localStorage.getItem("adherence.by") || window.prompt("Your name, for the approval's history:") || "";
    if (by) localStorage.setItem("adherence.by", by);
    var body = { start: state.offered.start, end: state.offered.end, reason: state.offered.reason };
    if (by) body.by = by;
    Adh.api("/api/periods", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then(function (r) { document.getElementById("feed-error").textContent = "✓ Approved as period #" + r.period.id; })
      .catch(function (err) { document.getElementById("feed-error").textContent = err.message; });
  });

  function poll() {
    clearTimeout(state.timer);
    var headers = { Accept: "application/json" };
    if (state.etag) headers["If-None-Match"] = state.etag;
    notifyChanged().then(function () {
      return fetch("/api/board/table?" + query().toString(), { credentials: "same-origin", headers: headers });
    }).then(function (r) {
      if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); return; }
      if (r.status === 304) return;
      return r.json().then(function (d) {
        if (!r.ok) throw new Error(d.error || "HTTP " + r.status);
        state.etag = r.headers.get("ETag");
        state.skewMs = Date.parse(d.now) - Date.now();
        state.data = d;
        render(d);
      });
    }).then(function () {
      Adh.status("Updated " + new Date(serverNow()).toISOString().slice(11, 19) + " UTC · every " + refreshMs / 1000 + "s", false);
    }).catch(function (err) {
      Adh.status("⚠ Could not update: " + err.message, true);
    }).then(function () {
      state.timer = setTimeout(poll, refreshMs);
    });
  }

  setInterval(function () {
    Array.prototype.forEach.call(document.querySelectorAll("#agents-table .timer"), function (node) {
      if (!node.dataset.since) return;
      var t = Adh.duration(since(node.dataset.since));
      node.textContent = node.classList.contains("out-for") ? "✗ " + t : t;
    });
    var clock = document.getElementById("clock");
    if (clock) clock.textContent = new Date(serverNow()).toISOString().slice(11, 19) + " UTC";
  }, 1000);
  poll();
})();
