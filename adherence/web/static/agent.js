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
})();
