/* Shared helpers for the board pages. Plain JS, no framework, no CDN.
 * Every value from the API is put in the page with textContent, never as HTML. */
"use strict";

var Adh = (function () {
  function el(tag, attrs) {
    var node = document.createElement(tag);
    var kids = Array.prototype.slice.call(arguments, 2);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === "text") node.textContent = v;
        else if (k === "class") node.className = v;
        else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
        else if (k === "dataset") Object.keys(v).forEach(function (d) { node.dataset[d] = v[d]; });
        else node.setAttribute(k, v === true ? "" : v);
      });
    }
    (function add(list) {
      list.forEach(function (c) {
        if (c === null || c === undefined || c === false) return;
        if (Array.isArray(c)) add(c);
        else node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
      });
    })(kids);
    return node;
  }

  function svg(tag, attrs) {
    var node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    return node;
  }

  /** 754 → "12m34s", 3700 → "1h01m" */
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    var s = Math.max(0, Math.floor(seconds));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    function two(n) { return (n < 10 ? "0" : "") + n; }
    if (h) return h + "h" + two(m) + "m";
    if (m) return m + "m" + two(r) + "s";
    return r + "s";
  }

  /** seconds → "1:02:03" (for day totals) */
  function hms(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    var s = Math.max(0, Math.round(seconds));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return h + ":" + two(m) + ":" + two(r);
  }

  function pct(v) {
    return v === null || v === undefined ? "—" : Number(v).toFixed(2) + "%";
  }

  function utc(isoText) {
    if (!isoText) return "—";
    return isoText.replace("T", " ").replace(/\.\d+Z$/, "Z").replace("Z", "");
  }

  function loginUrl() {
    return "/login?next=" + encodeURIComponent(location.pathname + location.search);
  }

  /** fetch JSON with the session cookie; 401 → the login page; errors carry the API's message */
  function api(url, options) {
    options = options || {};
    options.credentials = "same-origin";
    options.headers = Object.assign({ Accept: "application/json" }, options.headers || {});
    return fetch(url, options).then(function (r) {
      if (r.status === 401) {
        location.href = loginUrl();
        throw new Error("signed out");
      }
      return r.json().then(function (body) {
        if (!r.ok || body.ok === false) throw new Error(body.error || "HTTP " + r.status);
        return body;
      }, function () { throw new Error("HTTP " + r.status + " (not JSON)"); });
    });
  }

  function status(text, isError) {
    var node = document.getElementById("status");
    if (!node) return;
    node.textContent = text;
    node.className = "status" + (isError ? " status-error" : "");
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  return { el: el, svg: svg, duration: duration, hms: hms, pct: pct, utc: utc, api: api, status: status, clear: clear };
})();
