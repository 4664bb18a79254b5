/* The agent's day: show a bar's exact times in the detail line on hover or keyboard focus (the SVG's
 * <title> gives a tooltip on hover only). */
"use strict";

(function () {
  var detail = document.getElementById("detail");
  function show(ev) {
    var g = ev.target.closest ? ev.target.closest(".seg") : null;
    if (!g) return;
    detail.textContent = g.getAttribute("aria-label");
    document.querySelectorAll(".seg.current").forEach(function (n) { n.classList.remove("current"); });
    g.classList.add("current");
  }
  var svg = document.getElementById("timeline");
  svg.addEventListener("mouseover", show);
  svg.addEventListener("focusin", show);

  // snooze and acknowledge (offered only to a caller who may: the page renders the buttons); the page is
  // drawn on the server, so a change reloads it
  var alerts = document.getElementById("agent-alerts");
  if (!alerts || typeof AdhNotify === "undefined") return;
  function reload() { location.reload(); }
  var ready = AdhNotify.load();
  var snooze = document.getElementById("snooze-agent");
  if (snooze) snooze.addEventListener("click", function () {
    ready.then(function () { AdhNotify.openSnooze(alerts.dataset.agent, alerts.dataset.name, reload); });
  });
  document.querySelectorAll("#agent-exceptions button.ack").forEach(function (b) {
    b.addEventListener("click", function () {
      ready.then(function () { AdhNotify.openAck([Number(b.dataset.id)], b.dataset.label, reload); });
    });
  });
  document.querySelectorAll("#agent-exceptions button.exc-snooze").forEach(function (b) {
    b.addEventListener("click", function () {
      ready.then(function () { AdhNotify.openSnooze(alerts.dataset.agent, alerts.dataset.name, reload, Number(b.dataset.id)); });
    });
  });
  document.querySelectorAll("#agent-exceptions button.unack").forEach(function (b) {
    b.addEventListener("click", function () {
      var by = localStorage.getItem("adherence.by");
      Adh.api("/api/exceptions/" + b.dataset.id + "/ack", { method: "DELETE", headers: { "Content-Type": "application/json" },
                                                           body: JSON.stringify(by ? { by: by } : {}) })
        .then(reload).catch(function (err) { document.getElementById("detail").textContent = "⚠ " + err.message; });
    });
  });
})();
