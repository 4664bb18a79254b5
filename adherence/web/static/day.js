/* The day page: a day's adherence (chart by team, table by agent) and
 * exceptions with approve / withdraw. */
"use strict";

(function () {
  var el = Adh.el;
  var day = document.body.dataset.date;
  var isToday = day === document.body.dataset.today;
  var dialog = document.getElementById("approval-dialog");
  var form = document.getElementById("approval-form");
  var pending = null; // {id, approve} or {ids: [...], approve: true}
  var selected = {}; // exception id -> true
  var shown = []; // the exceptions in the table

  function chart(rows) {
    var root = document.getElementById("team-chart");
    Adh.clear(root);
    if (!rows.length) {
      root.appendChild(el("p", { class: "empty", text: "No adherence figures for " + day + "." }));
      return;
    }
    var rowH = 44, labelW = 180, barW = 520, pad = 8;
    var height = rows.length * rowH + pad * 2;
    var width = labelW + barW + 170;
    var s = Adh.svg("svg", { viewBox: "0 0 " + width + " " + height, width: "100%", role: "img",
                             "aria-label": "Adherence by team on " + day, class: "bars" });
    rows.forEach(function (r, i) {
      var y = pad + i * rowH;
      var p = r.adherence_percent === null ? 0 : Math.max(0, Math.min(100, r.adherence_percent));
      var good = p >= 90;
      s.appendChild(Adh.svg("text", { x: labelW - 10, y: y + rowH / 2 + 6, "text-anchor": "end", class: "bar-label",
                                      text: r.team || "(no team)" }));
      s.appendChild(Adh.svg("rect", { x: labelW, y: y + 6, width: barW, height: rowH - 12, class: "bar-track" }));
      s.appendChild(Adh.svg("rect", { x: labelW, y: y + 6, width: barW * p / 100, height: rowH - 12,
                                      class: "bar " + (good ? "bar-good" : "bar-bad") }));
      s.appendChild(Adh.svg("text", { x: labelW + barW + 10, y: y + rowH / 2 + 6, class: "bar-value",
                                      "data-team": r.team || "", text: (good ? "✓ " : "✗ ") + Adh.pct(r.adherence_percent) }));
    });
    root.appendChild(s);
  }

  function strip(rows) {
    var root = document.getElementById("interval-strip");
    Adh.clear(root);
    if (!rows.length) {
      root.appendChild(el("p", { class: "empty", text: "No intervals for " + day + "." }));
      return;
    }
    var starts = [], labels = {}, teams = [];
    rows.forEach(function (r) {
      if (!(r.start in labels)) { starts.push(r.start); labels[r.start] = r.local_start; }
      var t = r.team || "(no team)";
      if (teams.indexOf(t) < 0) teams.push(t);
    });
    starts.sort();
    var cellW = 18, rowH = 26, labelW = 150, top = 22;
    var width = labelW + starts.length * cellW + 10, height = top + teams.length * rowH + 6;
    var s = Adh.svg("svg", { viewBox: "0 0 " + width + " " + height, width: "100%", role: "group",
                             "aria-label": "Adherence by interval on " + day, class: "heat" });
    starts.forEach(function (st, i) {
      if (labels[st].slice(3) === "00" && i % 2 === 0) {
        s.appendChild(Adh.svg("text", { x: labelW + i * cellW, y: 14, class: "heat-hour", text: labels[st] }));
      }
    });
    teams.forEach(function (t, j) {
      s.appendChild(Adh.svg("text", { x: labelW - 8, y: top + j * rowH + 17, "text-anchor": "end", class: "bar-label", text: t }));
    });
    rows.forEach(function (r) {
      var i = starts.indexOf(r.start), j = teams.indexOf(r.team || "(no team)");
      var p = r.adherence_percent;
      var cls = p === null ? "heat-neutral" : p >= 90 ? "heat-good" : p >= 75 ? "heat-mid" : "heat-bad";
      var text = (r.team || "(no team)") + " " + r.local_start + " (" + r.utc_offset + "): " + Adh.pct(p) +
        " · scheduled " + Adh.hms(r.scheduled_seconds) + ", out " + Adh.hms(r.out_of_adherence_seconds) +
        ", neutral " + Adh.hms(r.neutral_seconds) + ", approved " + Adh.hms(r.approved_seconds);
      var g = Adh.svg("g", { class: "cell", tabindex: "0", role: "img", "aria-label": text,
                              "data-team": r.team || "", "data-start": r.start });
      g.appendChild(Adh.svg("title", { text: text }));
      g.appendChild(Adh.svg("rect", { x: labelW + i * cellW, y: top + j * rowH, width: cellW - 2, height: rowH - 4,
                                       rx: 2, class: cls }));
      s.appendChild(g);
    });
    function show(ev) {
      var g = ev.target.closest ? ev.target.closest(".cell") : null;
      if (g) document.getElementById("strip-detail").textContent = g.getAttribute("aria-label");
    }
    s.addEventListener("mouseover", show);
    s.addEventListener("focusin", show);
    root.appendChild(s);
  }

  function adherenceTable(rows) {
    var body = document.querySelector("#adherence-table tbody");
    Adh.clear(body);
    if (!rows.length) body.appendChild(el("tr", null, el("td", { colspan: "9", class: "empty", text: "No rows." })));
    rows.forEach(function (r) {
      body.appendChild(el("tr", { dataset: { agent: r.agent } },
        el("td", null, el("a", { href: "/agents/" + encodeURIComponent(r.agent) + "?date=" + day, class: "agent-link",
                                 text: r.agent })), el("td", { text: r.team || "" }),
        el("td", { text: Adh.hms(r.scheduled_seconds) }), el("td", { text: Adh.hms(r.in_adherence_seconds) }),
        el("td", { class: "out-seconds", text: Adh.hms(r.out_of_adherence_seconds) }),
        el("td", { class: "approved-seconds", text: Adh.hms(r.approved_seconds) }),
        el("td", { class: "adherence-pct", text: Adh.pct(r.adherence_percent) + (r.stale ? " (stale)" : ""),
                   title: r.stale ? "Computed with other schedules or rules than the files in force: " +
                                    "adherence recompute --stale brings it up to date" : "" }),
        el("td", { text: Adh.pct(r.conformance_percent) }),
        el("td", { text: String(r.exceptions) }),
        el("td", { class: "neutral-seconds", text: Adh.hms(r.neutral_seconds || 0) })));
    });
  }

  function exceptionsTable(rows) {
    var body = document.querySelector("#exceptions-table tbody");
    Adh.clear(body);
    if (!rows.length) body.appendChild(el("tr", null, el("td", { colspan: "14", class: "empty", text: "No exceptions." })));
    shown = rows;
    var keep = {};
    rows.forEach(function (e) { if (selected[e.id] && !e.approved) keep[e.id] = true; });
    selected = keep;
    rows.forEach(function (e) {
      var approval = e.approved
        ? "✓ Approved" + (e.approved_by ? " by " + e.approved_by : "") + (e.note ? ": " + e.note : "")
        : (e.note ? "Not approved (" + e.note + ")" : "Not approved");
      var button = e.approved
        ? el("button", { type: "button", class: "withdraw", onclick: function () { ask(e, false); }, text: "Withdraw" })
        : el("button", { type: "button", class: "approve", onclick: function () { ask(e, true); }, text: "Approve…" });
      if (!e.approved && e.excused_by && e.excused_by.length) approval += " · excused by period #" + e.excused_by.join(", #");
      if (e.impact === "neutral") approval += " · neutral";
      var notified = AdhNotify.state().exceptions[e.id] || {};
      var box = el("input", { type: "checkbox", class: "select", "aria-label": "Select exception #" + e.id });
      box.checked = !!selected[e.id];
      box.disabled = e.approved;
      box.addEventListener("change", function () {
        if (box.checked) selected[e.id] = true; else delete selected[e.id];
        selectionChanged();
      });
      body.appendChild(el("tr", { dataset: { id: String(e.id) }, class: "sev-" + e.severity + (e.approved ? " approved" : "") },
        el("td", null, box),
        el("td", { text: String(e.id) }), el("td", { text: e.agent }), el("td", { text: e.team || "" }),
        el("td", { text: e.rule }), el("td", { text: e.severity }),
        el("td", { text: e.scheduled_activity || "—" }), el("td", { text: (e.actual_activity || "Unknown") + (e.task_state && e.task_state !== "none" ? " · " + e.task_state : "") }),
        el("td", { text: Adh.utc(e.start) }), el("td", { text: e.status === "open" ? "open" : Adh.utc(e.end) }),
        el("td", { text: Adh.duration(e.duration_seconds) }),
        el("td", { class: "approval", text: approval }), el("td", null, button),
        el("td", { class: "notify" }, AdhNotify.exceptionBadge(e.id), " ",
           e.status === "open" || notified.acknowledged ? AdhNotify.ackButton(e.id, e.agent + " · " + e.rule, load) : null,
           " ", e.status === "open" || notified.snoozed_until ? AdhNotify.exceptionSnoozeButton(e.id, e.agent, load) : null)));
    });
  }

  function selectionChanged() {
    var n = Object.keys(selected).length;
    document.getElementById("selected-count").textContent = n + " selected";
    document.getElementById("approve-selected").disabled = n === 0;
  }

  document.getElementById("select-all").addEventListener("change", function (ev) {
    selected = {};
    if (ev.target.checked) shown.forEach(function (e) { if (!e.approved) selected[e.id] = true; });
    document.querySelectorAll("#exceptions-table input.select").forEach(function (b) {
      b.checked = ev.target.checked && !b.disabled;
    });
    selectionChanged();
  });

  document.getElementById("approve-selected").addEventListener("click", function () {
    var ids = Object.keys(selected).map(Number);
    if (!ids.length) return;
    pending = { ids: ids, approve: true };
    document.getElementById("approval-title").textContent = "Approve " + ids.length + " exceptions";
    document.getElementById("approval-what").textContent = "#" + ids.join(", #");
    document.getElementById("approval-ok").textContent = "Approve " + ids.length;
    openDialog(true);
  });

  function who(p) {
    return p.scope === "all" ? "everyone" : p.scope + " " + (p.scope === "agent" ? (p.agent || p.target) : p.target);
  }

  function periodsTable(rows) {
    var body = document.querySelector("#periods-table tbody");
    Adh.clear(body);
    if (!rows.length) body.appendChild(el("tr", null, el("td", { colspan: "9", class: "empty", text: "No period approvals." })));
    rows.forEach(function (p) {
      var button = p.withdrawn ? el("span", { text: "" }) :
        el("button", { type: "button", class: "withdraw-period", text: "Withdraw",
                       onclick: function () { withdrawPeriod(p); } });
      body.appendChild(el("tr", { dataset: { id: String(p.id) }, class: p.withdrawn ? "withdrawn" : "" },
        el("td", { text: String(p.id) }), el("td", { text: who(p) }),
        el("td", { text: Adh.utc(p.start) }), el("td", { text: Adh.utc(p.end) }),
        el("td", { text: p.mode === "in" ? "in adherence" : "neutral" }), el("td", { text: p.reason }),
        el("td", { text: p.by || "" }),
        el("td", { class: "period-state", text: p.withdrawn ? "withdrawn by " + (p.withdrawn_by || "?") : "in force" }),
        el("td", null, button)));
    });
  }

  function auditTable(rows) {
    var body = document.querySelector("#audit-table tbody");
    Adh.clear(body);
    if (!rows.length) body.appendChild(el("tr", null, el("td", { colspan: "7", class: "empty", text: "Nothing approved, acknowledged or snoozed yet." })));
    var words = { approve: "approved", withdraw: "withdrew approval", period_approve: "approved a period",
                  period_withdraw: "withdrew a period" };
    rows.forEach(function (a) {
      body.appendChild(el("tr", { dataset: { action: a.action } },
        el("td", { text: Adh.utc(a.at) }), el("td", { text: a.by || "" }),
        el("td", { text: words[a.action] || AdhNotify.historyText(a) || a.action }),
        el("td", { text: a.exception_id ? "#" + a.exception_id : "" }), el("td", { text: a.period_id ? "#" + a.period_id : "" }),
        el("td", { text: a.agent || "" }), el("td", { text: a.note || "" })));
    });
  }

  function withdrawPeriod(p) {
    var by = localStorage.getItem("adherence.by") || "";
    Adh.api("/api/periods/" + p.id, { method: "DELETE", headers: { "Content-Type": "application/json" },
                                      body: JSON.stringify(by ? { by: by } : {}) })
      .then(load).catch(function (err) { Adh.status("⚠ " + err.message, true); });
  }

  document.getElementById("period-by").value = localStorage.getItem("adherence.by") || "";
  document.getElementById("period-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var err = document.getElementById("period-error");
    err.textContent = "";
    var scope = document.getElementById("period-scope").value;
    var target = document.getElementById("period-target").value.trim();
    var body = {
      start: day + "T" + document.getElementById("period-start").value + ":00Z",
      end: day + "T" + document.getElementById("period-end").value + ":00Z",
      reason: document.getElementById("period-reason").value.trim(),
      by: document.getElementById("period-by").value.trim(),
    };
    var mode = document.getElementById("period-mode").value;
    if (mode) body.mode = mode;
    if (scope !== "all") {
      if (!target) { err.textContent = "Name the " + scope + "."; return; }
      body[scope] = target;
    }
    if (body.by) localStorage.setItem("adherence.by", body.by);
    Adh.api("/api/periods", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then(function () { document.getElementById("period-reason").value = ""; return load(); })
      .catch(function (e) { err.textContent = e.message; });
  });

  // every page of a list: a center of any size is shown whole (the API pages at 1,000 rows)
  function every(url, key) {
    return Adh.api(url).then(function (data) {
      if (!data.next) return data;
      return every(data.next, key).then(function (rest) {
        data[key] = data[key].concat(rest[key]);
        data.next = null;
        return data;
      });
    });
  }

  function load() {
    var q = "date=" + encodeURIComponent(day) + "&limit=1000";
    return Promise.all([
      every("/api/adherence?group=team&" + q, "adherence"),
      every("/api/adherence?" + q, "adherence"),
      every("/api/exceptions?" + q, "exceptions"),
      Adh.api("/api/periods?date=" + encodeURIComponent(day)),
      Adh.api("/api/audit?" + q),
      Adh.api("/api/intervals?group=team&size=30m&limit=100000&date=" + encodeURIComponent(day)),
      AdhNotify.load(day),
    ]).then(function (res) {
      strip(res[5].intervals);
      chart(res[0].adherence);
      adherenceTable(res[1].adherence);
      exceptionsTable(res[2].exceptions);
      periodsTable(res[3].periods);
      auditTable(res[4].audit);
      selectionChanged();
      var more = " · " + res[1].adherence.length + " agents, " + res[2].exceptions.length + " exceptions";
      Adh.status("Updated " + new Date().toISOString().slice(11, 19) + " UTC" + more, false);
    }).catch(function (err) {
      Adh.status("⚠ Could not load: " + err.message, true);
    });
  }

  function ask(e, approve) {
    pending = { id: e.id, approve: approve };
    document.getElementById("approval-title").textContent = approve ? "Approve exception #" + e.id : "Withdraw approval of #" + e.id;
    document.getElementById("approval-what").textContent =
      e.agent + " · " + e.rule + " · " + Adh.utc(e.start) + " · " + Adh.duration(e.duration_seconds);
    document.getElementById("approval-ok").textContent = approve ? "Approve" : "Withdraw approval";
    openDialog(approve);
  }

  function openDialog(approve) {
    var by = document.getElementById("approval-by");
    by.value = localStorage.getItem("adherence.by") || "";
    by.required = approve;
    document.getElementById("approval-note").value = "";
    document.getElementById("approval-error").textContent = "";
    dialog.showModal();
    (by.value ? document.getElementById("approval-note") : by).focus();
  }

  document.getElementById("approval-cancel").addEventListener("click", function () { pending = null; dialog.close(); });

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (!pending) return;
    var by = document.getElementById("approval-by").value.trim();
    var note = document.getElementById("approval-note").value.trim();
    if (pending.approve && !by) {
      document.getElementById("approval-error").textContent = "Your name is required to approve.";
      return;
    }
    if (by) localStorage.setItem("adherence.by", by);
    var body = {};
    if (by) body.by = by;
    if (note) body.note = note;
    var url = "/api/exceptions/" + pending.id + "/approve";
    if (pending.ids) {
      url = "/api/exceptions/approve";
      body.ids = pending.ids;
    }
    Adh.api(url, {
      method: pending.approve ? "POST" : "DELETE",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    }).then(function () {
      if (pending && pending.ids) selected = {};
      pending = null;
      dialog.close();
      return load();
    }).catch(function (err) {
      document.getElementById("approval-error").textContent = err.message;
    });
  });

  load();
  if (isToday) {
    setInterval(function () {
      var other = document.getElementById("notify-dialog");
      if (!dialog.open && !(other && other.open)) load();
    }, 10000);
  }
})();
