/* Snooze and acknowledge on the board, the day page and the agent's day (issue #14).
 *
 * State comes from /api/notifications/state: what is snoozed (until when, by whom), what is acknowledged (by
 * whom), and whether the caller may change it (a viewer token, or notifications not configured: no control is
 * offered; the API refuses such a write anyway, and scopes every change to the token's teams). Changes are
 * JSON requests with the session cookie, like approvals (the API refuses a cookie write that is not JSON). */
"use strict";

var AdhNotify = (function () {
  var el = Adh.el;
  var state = { configured: false, can_write: false, named: false, step: 15, max: 1425, agents: {}, exceptions: {} };
  var dialog = null;
  var pending = null; // {url, kind, onDone}

  function load(date) {
    return Adh.api("/api/notifications/state" + (date ? "?date=" + encodeURIComponent(date) : "")).then(function (d) {
      var agents = {}, excs = {};
      d.agents.forEach(function (a) { agents[a.agent] = a; agents[a.worker_sid] = a; });
      d.exceptions.forEach(function (e) { excs[e.exception_id] = e; });
      state = { configured: d.configured, can_write: d.can_write, named: d.named, step: d.snooze_step_minutes,
                max: d.snooze_max_minutes, agents: agents, exceptions: excs };
      return state;
    });
  }

  function when(isoText) {
    var t = Adh.utc(isoText);
    var today = new Date().toISOString().slice(0, 10);
    return (t.slice(0, 10) === today ? t.slice(11, 16) : t.slice(0, 16)) + " UTC";
  }

  function minutesText(m) {
    var h = Math.floor(m / 60), r = m % 60;
    return (h ? h + " h" : "") + (h && r ? " " : "") + (r ? r + " min" : "");
  }

  /** "🔕 snoozed until 14:30 UTC by sam", or null */
  function agentBadge(agent) {
    var s = state.agents[agent];
    if (!s) return null;
    return el("span", { class: "notify-badge snoozed", dataset: { until: s.until },
                        text: "🔕 alerts snoozed until " + when(s.until) + (s.by ? " by " + s.by : "") });
  }

  function exceptionBadge(id) {
    var s = state.exceptions[id];
    if (!s || (!s.snoozed_until && !s.acknowledged)) return null;
    var parts = [];
    if (s.acknowledged) parts.push("👁 acknowledged" + (s.acknowledged.by ? " by " + s.acknowledged.by : "") +
                                   (s.acknowledged.note ? ": " + s.acknowledged.note : ""));
    if (s.snoozed_until) parts.push("🔕 snoozed until " + when(s.snoozed_until) + (s.snoozed_by ? " by " + s.snoozed_by : ""));
    return el("span", { class: "notify-badge" + (s.acknowledged ? " acked" : "") + (s.snoozed_until ? " snoozed" : ""),
                        dataset: s.snoozed_until ? { until: s.snoozed_until } : null, text: parts.join(" · ") });
  }

  function canWrite() { return state.configured && state.can_write; }

  /** a "Snooze…" button for an agent, or null when the caller may not snooze */
  function snoozeButton(agent, label, onDone) {
    if (!canWrite()) return null;
    return el("button", { type: "button", class: "snooze", dataset: { agent: agent },
                          "aria-label": "Snooze alerts about " + label, text: state.agents[agent] ? "Snooze…" : "🔕 Snooze…",
                          onclick: function () { openSnooze(agent, label, onDone); } });
  }

  /** a "Snooze…" button for one exception (its alerts only, not the agent's others), or null when the caller
   * may not snooze; the dialog offers "End the snooze now" while one is in force */
  function exceptionSnoozeButton(id, agent, onDone) {
    if (!canWrite()) return null;
    var snoozed = !!(state.exceptions[id] || {}).snoozed_until;
    return el("button", { type: "button", class: "snooze exc-snooze", dataset: { id: String(id) },
                          "aria-label": "Snooze alerts of exception #" + id, text: snoozed ? "Snooze…" : "🔕 Snooze…",
                          onclick: function () { openSnooze(agent, "exception #" + id, onDone, id); } });
  }

  /** "Acknowledge…" (or "Withdraw ack") for an exception, or null when the caller may not */
  function ackButton(id, label, onDone) {
    if (!canWrite()) return null;
    var s = state.exceptions[id];
    if (s && s.acknowledged) {
      return el("button", { type: "button", class: "unack", dataset: { id: String(id) }, text: "Withdraw ack",
                            onclick: function () { send("/api/exceptions/" + id + "/ack", "DELETE", {}, onDone); } });
    }
    return el("button", { type: "button", class: "ack", dataset: { id: String(id) },
                          "aria-label": "Acknowledge exception #" + id, text: "👁 Ack…",
                          onclick: function () { openAck([id], label, onDone); } });
  }

  function build() {
    if (dialog) return dialog;
    var options = [];
    dialog = el("dialog", { id: "notify-dialog", "aria-labelledby": "notify-title" },
      el("form", { method: "dialog", id: "notify-form" },
        el("h2", { id: "notify-title" }),
        el("p", { id: "notify-what" }),
        el("label", { id: "notify-minutes-label" }, "Snooze for ", el("select", { id: "notify-minutes" })),
        el("label", null, "Your name ", el("input", { type: "text", id: "notify-by", maxlength: "200",
                                                       autocomplete: "name" })),
        el("label", null, "Note ", el("textarea", { id: "notify-note", maxlength: "2000", rows: "2" })),
        el("p", { id: "notify-error", class: "error-text", role: "alert" }),
        el("menu", null,
          el("button", { type: "button", id: "notify-cancel", text: "Cancel",
                         onclick: function () { pending = null; dialog.close(); } }),
          el("button", { type: "submit", id: "notify-ok", text: "OK" }))));
    document.body.appendChild(dialog);
    dialog.querySelector("form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (!pending) return;
      var by = document.getElementById("notify-by").value.trim();
      var note = document.getElementById("notify-note").value.trim();
      if (!by && !state.named) {
        document.getElementById("notify-error").textContent = "Your name is required (it goes in the history).";
        return;
      }
      if (by) localStorage.setItem("adherence.by", by);
      var body = {};
      if (by) body.by = by;
      if (note) body.note = note;
      if (pending.kind === "snooze") body.minutes = Number(document.getElementById("notify-minutes").value);
      var urls = pending.urls, onDone = pending.onDone;
      Promise.all(urls.map(function (u) {
        return Adh.api(u, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      })).then(function () {
        pending = null;
        dialog.close();
        if (onDone) onDone();
      }).catch(function (err) { document.getElementById("notify-error").textContent = err.message; });
    });
    return dialog;
  }

  function open(title, what, kind, urls, onDone) {
    build();
    pending = { kind: kind, urls: urls, onDone: onDone };
    document.getElementById("notify-title").textContent = title;
    document.getElementById("notify-what").textContent = what;
    document.getElementById("notify-minutes-label").hidden = kind !== "snooze";
    document.getElementById("notify-ok").textContent = kind === "snooze" ? "Snooze" : "Acknowledge";
    var by = document.getElementById("notify-by");
    by.value = localStorage.getItem("adherence.by") || "";
    by.placeholder = state.named ? "(your token's name)" : "";
    document.getElementById("notify-note").value = "";
    document.getElementById("notify-error").textContent = "";
    dialog.showModal();
  }

  function openSnooze(agent, label, onDone, exceptionId) {
    build();
    var select = document.getElementById("notify-minutes");
    Adh.clear(select);
    var current = exceptionId ? (state.exceptions[exceptionId] || {}).snoozed_until : (state.agents[agent] || {}).until;
    if (current) select.appendChild(el("option", { value: "0", text: "End the snooze now" }));
    for (var m = state.step; m <= state.max; m += state.step) {
      select.appendChild(el("option", { value: String(m), text: minutesText(m) }));
    }
    select.value = String(current ? 0 : 2 * state.step);
    var url = exceptionId ? "/api/exceptions/" + exceptionId + "/snooze" : "/api/agents/" + encodeURIComponent(agent) + "/snooze";
    open(exceptionId ? "Snooze alerts of exception #" + exceptionId : "Snooze alerts about " + label,
         (current ? "Snoozed until " + when(current) + ". " : "") +
         "No opening or reminder is sent meanwhile (in steps of " + state.step + " min, at most " +
         minutesText(state.max) + ").", "snooze", [url], onDone);
  }

  function openAck(ids, label, onDone) {
    open(ids.length > 1 ? "Acknowledge " + ids.length + " exceptions" : "Acknowledge exception #" + ids[0],
         label + " — no more reminders about " + (ids.length > 1 ? "them" : "it") + ".", "ack",
         ids.map(function (id) { return "/api/exceptions/" + id + "/ack"; }), onDone);
  }

  function send(url, method, body, onDone) {
    var by = localStorage.getItem("adherence.by");
    if (by && !body.by) body.by = by;
    return Adh.api(url, { method: method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then(function () { if (onDone) onDone(); })
      .catch(function (err) { Adh.status("⚠ " + err.message, true); });
  }

  /** the history's words for the notification actions (the approvals' are the pages' own) */
  var WORDS = { snooze: "snoozed alerts", unsnooze: "ended a snooze", ack: "acknowledged", unack: "withdrew an acknowledgement",
                retry: "retried a notification" };

  function historyText(a) {
    var w = WORDS[a.action];
    if (!w) return null;
    if (a.action === "snooze" && a.detail && a.detail.until) w += " until " + when(a.detail.until);
    return w;
  }

  return { load: load, state: function () { return state; }, canWrite: canWrite, agentBadge: agentBadge,
           exceptionBadge: exceptionBadge, snoozeButton: snoozeButton, exceptionSnoozeButton: exceptionSnoozeButton,
           ackButton: ackButton, openSnooze: openSnooze,
           openAck: openAck, historyText: historyText, when: when };
})();
