/* The live board: agents grouped by team, refreshed from /api/agents and
 * /api/adherence every few seconds without reloading the page. */
"use strict";

(function () {
  var el = Adh.el;
  var refreshMs = Number(document.body.dataset.refresh) || 3000;
  var params = new URLSearchParams(location.search);
  var state = {
    team: params.get("team") || "",
    onlyOut: params.get("out_of_adherence") === "true",
    agents: [],
    teams: [],
    teamDay: {},
    date: null,
    skewMs: 0,
    lastOk: null,
  };

  var teamSelect = document.getElementById("team-filter");
  var outBox = document.getElementById("out-filter");
  outBox.checked = state.onlyOut;

  function syncUrl() {
    var p = new URLSearchParams();
    if (state.team) p.set("team", state.team);
    if (state.onlyOut) p.set("out_of_adherence", "true");
    var q = p.toString();
    history.replaceState(null, "", location.pathname + (q ? "?" + q : ""));
  }

  teamSelect.addEventListener("change", function () { state.team = teamSelect.value; syncUrl(); render(); });
  outBox.addEventListener("change", function () { state.onlyOut = outBox.checked; syncUrl(); render(); });

  function serverNow() { return Date.now() + state.skewMs; }

  function secondsSince(isoText) {
    return isoText ? (serverNow() - Date.parse(isoText)) / 1000 : null;
  }

  function stateLabel(a) {
    return a.in_adherence ? "✓ In adherence" : "✗ Out of adherence";
  }

  function activityText(a) {
    if (!a.seen) return "Not seen in the feed yet";
    var t = a.activity || "Unknown";
    if (a.task_state && a.task_state !== "none") t += " · task " + a.task_state;
    else t += " · no task";
    return t;
  }

  function channelText(a) {
    var busy = (a.channels || []).filter(function (c) { return c.task_state && c.task_state !== "none"; });
    if (!busy.length) return null;
    return busy.map(function (c) { return (c.name || "channel") + ": " + c.task_state; }).join(", ");
  }

  function clockTime(isoText) {
    var d = new Date(isoText);
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return isNaN(d) ? isoText : two(d.getHours()) + ":" + two(d.getMinutes());
  }

  function card(a) {
    var out = !a.in_adherence;
    var exc = a.open_exceptions.slice().sort(function (x, y) { return x.start < y.start ? -1 : 1; });
    var channels = channelText(a);
    return el("article", {
        class: "agent " + (out ? "out" : "in"),
        dataset: { agent: a.agent, state: out ? "out" : "in" },
        "aria-label": (a.name || a.agent) + ": " + stateLabel(a),
      },
      el("div", { class: "badge " + (out ? "badge-out" : "badge-in"), text: stateLabel(a) }),
      el("h3", { class: "agent-name" },
         el("a", { href: "/agents/" + encodeURIComponent(a.agent) + (a.today ? "?date=" + a.today.date : ""),
                   class: "agent-link", text: a.name || a.agent })),
      el("dl", null,
        el("dt", { text: "Now" }), el("dd", { class: "activity", text: activityText(a) }),
        channels ? el("dt", { text: "Channels" }) : null, channels ? el("dd", { text: channels }) : null,
        el("dt", { text: "Scheduled" }),
        el("dd", { class: "scheduled", text: a.scheduled_activity || "Not scheduled" }),
        a.schedule_problem ? el("dt", { text: "Schedule" }) : null,
        a.schedule_problem ? el("dd", { class: "schedule-problem", title: (a.schedule_problem.files || []).join("\n"),
          text: "⚠ schedule file broken" + (a.schedule_problem.since ? " since " + clockTime(a.schedule_problem.since) : "") }) : null,
        el("dt", { text: "In state" }),
        el("dd", { class: "timer", dataset: { since: a.since || "" }, text: Adh.duration(secondsSince(a.since)) }),
        el("dt", { text: "Today" }),
        el("dd", { class: "today-pct", text: a.today ? Adh.pct(a.today.adherence_percent) : "—" })
      ),
      exc.length ? el("ul", { class: "agent-exceptions" }, exc.map(function (e) {
        return el("li", { class: "sev-" + e.severity + (e.approved ? " approved" : ""), dataset: { id: String(e.id) } },
          el("span", { class: "exc-rule", text: (e.approved ? "✓ approved: " : "⚠ ") + e.rule }),
          " ",
          el("span", { class: "timer", dataset: { since: e.start }, text: Adh.duration(secondsSince(e.start)) }),
          " ", AdhNotify.exceptionBadge(e.id),
          " ", AdhNotify.ackButton(e.id, (a.name || a.agent) + " · " + e.rule, notifyChanged),
          " ", AdhNotify.exceptionSnoozeButton(e.id, a.agent, notifyChanged));
      })) : null,
      el("div", { class: "notify" }, AdhNotify.agentBadge(a.agent), " ",
         AdhNotify.snoozeButton(a.agent, a.name || a.agent, notifyChanged))
    );
  }

  function notifyChanged() {
    AdhNotify.load().then(render).catch(function (err) { Adh.status("⚠ " + err.message, true); });
  }

  function visible(a) {
    if (state.team && a.team !== state.team) return false;
    if (state.onlyOut && a.in_adherence) return false;
    return true;
  }

  function renderTeams(list) {
    var root = document.getElementById("teams");
    Adh.clear(root);
    var groups = {};
    var order = [];
    list.forEach(function (a) {
      var t = a.team || "(no team)";
      if (!groups[t]) { groups[t] = []; order.push(t); }
      groups[t].push(a);
    });
    if (!order.length) {
      root.appendChild(el("p", { class: "empty", text: state.agents.length ? "No agent matches the filters." : "No agents yet." }));
    }
    order.forEach(function (t) {
      var agents = groups[t];
      var outN = agents.filter(function (a) { return !a.in_adherence; }).length;
      var day = state.teamDay[t];
      root.appendChild(el("section", { class: "team", dataset: { team: t } },
        el("h2", null,
          el("span", { class: "team-name", text: t }),
          el("span", { class: "team-pct", text: "Today " + (day ? Adh.pct(day.adherence_percent) : "—") }),
          el("span", { class: "team-count " + (outN ? "has-out" : ""),
                       text: outN ? "✗ " + outN + " of " + agents.length + " out" : "✓ all " + agents.length + " in" })
        ),
        el("div", { class: "cards" }, agents.map(card))
      ));
    });
  }

  function renderExceptions(list) {
    var root = document.getElementById("open-exceptions");
    Adh.clear(root);
    var rows = [];
    list.forEach(function (a) {
      a.open_exceptions.forEach(function (e) { rows.push({ a: a, e: e }); });
    });
    rows.sort(function (x, y) { return x.e.start < y.e.start ? -1 : x.e.start > y.e.start ? 1 : 0; });
    if (!rows.length) root.appendChild(el("li", { class: "empty", text: "None ✓" }));
    rows.forEach(function (r) {
      root.appendChild(el("li", { class: "sev-" + r.e.severity + (r.e.approved ? " approved" : ""), dataset: { id: String(r.e.id) } },
        el("span", { class: "timer big", dataset: { since: r.e.start }, text: Adh.duration(secondsSince(r.e.start)) }),
        el("span", { class: "who", text: r.a.name || r.a.agent }),
        el("span", { class: "what", text: (r.e.approved ? "✓ approved · " : "") + r.e.rule + " (" + r.e.severity + ")" }),
        el("span", { class: "detail", text: "scheduled " + (r.e.scheduled_activity || "nothing") + ", actually " + (r.e.actual_activity || "Unknown") }),
        AdhNotify.exceptionBadge(r.e.id),
        AdhNotify.ackButton(r.e.id, (r.a.name || r.a.agent) + " · " + r.e.rule, notifyChanged),
        AdhNotify.exceptionSnoozeButton(r.e.id, r.a.agent, notifyChanged)
      ));
    });
  }

  function renderSummary(list) {
    var root = document.getElementById("summary");
    Adh.clear(root);
    var out = list.filter(function (a) { return !a.in_adherence; }).length;
    var sched = 0, inAdh = 0;
    Object.keys(state.teamDay).forEach(function (t) {
      if (state.team && t !== state.team) return;
      sched += state.teamDay[t].scheduled_seconds || 0;
      inAdh += state.teamDay[t].in_adherence_seconds || 0;
    });
    root.appendChild(el("span", { class: "pill", text: list.length + " agents" }));
    root.appendChild(el("span", { class: "pill " + (out ? "pill-out" : "pill-in"), id: "out-count",
                                  text: out ? "✗ " + out + " out of adherence" : "✓ all in adherence" }));
    root.appendChild(el("span", { class: "pill", text: "Adherence today " + (sched ? Adh.pct(inAdh * 100 / sched) : "—") }));
    if (state.date) root.appendChild(el("a", { class: "pill link", href: "/day?date=" + state.date, text: "Day view " + state.date + " →" }));
  }

  function renderTeamOptions() {
    var current = teamSelect.value || state.team;
    var have = Array.prototype.map.call(teamSelect.options, function (o) { return o.value; }).join("|");
    var want = [""].concat(state.teams).join("|");
    if (have === want) return;
    Adh.clear(teamSelect);
    teamSelect.appendChild(el("option", { value: "", text: "All teams" }));
    state.teams.forEach(function (t) { teamSelect.appendChild(el("option", { value: t, text: t })); });
    teamSelect.value = current;
  }

  function render() {
    var list = state.agents.filter(visible);
    renderTeamOptions();
    renderSummary(list);
    renderTeams(list);
    renderExceptions(list);
  }

  function tick() {
    Array.prototype.forEach.call(document.querySelectorAll(".timer[data-since]"), function (node) {
      if (node.dataset.since) node.textContent = Adh.duration(secondsSince(node.dataset.since));
    });
    var clock = document.getElementById("clock");
    if (clock) clock.textContent = new Date(serverNow()).toISOString().slice(11, 19) + " UTC";
    if (state.lastOk !== null) {
      var age = Math.round((Date.now() - state.lastOk) / 1000);
      if (age > 3 * refreshMs / 1000 + 5) Adh.status("⚠ No update for " + Adh.duration(age) + " — retrying", true);
    }
  }

  var offered = null; // the silent period the banner offers to approve

  function feedBanner(feed) {
    var banner = document.getElementById("feed-banner");
    if (!feed || !feed.silent) { banner.hidden = true; offered = null; return; }
    offered = feed.offer;
    document.getElementById("feed-text").textContent = "⚠ No record from Flex for " + Adh.duration(feed.silent_seconds) +
      " (since " + feed.last_record_at.slice(11, 19) + " UTC) while " + feed.scheduled_agents +
      " agents are scheduled: the feed may be down, and everyone may look out of adherence.";
    document.getElementById("feed-error").textContent = "";
    banner.hidden = false;
  }

  document.getElementById("feed-approve").addEventListener("click", function () {
    if (!offered) return;
    var by = localStorage.getItem("adherence.by") || window.prompt("Your name, for the approval's history:") || "";
    if (by) localStorage.setItem("adherence.by", by);
    var body = { start: offered.start, end: offered.end, reason: offered.reason };
    if (by) body.by = by;
    Adh.api("/api/periods", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then(function (r) {
        document.getElementById("feed-error").textContent = "✓ Approved as period #" + r.period.id +
          " (" + r.period.start.slice(11, 16) + "–" + r.period.end.slice(11, 16) + " UTC, " + r.period.mode + ")";
      }).catch(function (err) { document.getElementById("feed-error").textContent = err.message; });
  });

  // every page: a center larger than one page is shown whole (the table mode suits large centers better)
  function allAgents(url, acc) {
    return Adh.api(url).then(function (data) {
      acc = acc ? acc.concat(data.agents) : data.agents;
      if (data.next) return allAgents(data.next, acc);
      data.agents = acc;
      return data;
    });
  }

  function refresh() {
    Promise.all([allAgents("/api/agents?limit=5000"), AdhNotify.load()]).then(function (both) {
      var data = both[0];
      feedBanner(data.feed);
      state.agents = data.agents;
      state.teams = data.teams;
      state.date = data.date;
      state.skewMs = Date.parse(data.now) - Date.now();
      return Adh.api("/api/adherence?group=team&limit=1000&date=" + encodeURIComponent(data.date));
    }).then(function (days) {
      var byTeam = {};
      days.adherence.forEach(function (r) { byTeam[r.team || "(no team)"] = r; });
      state.teamDay = byTeam;
      state.lastOk = Date.now();
      render();
      Adh.status("Updated " + new Date(serverNow()).toISOString().slice(11, 19) + " UTC · every " + refreshMs / 1000 + "s", false);
    }).catch(function (err) {
      Adh.status("⚠ Could not update: " + err.message, true);
    }).then(function () {
      setTimeout(refresh, refreshMs);
    });
  }

  setInterval(tick, 1000);
  refresh();
})();
