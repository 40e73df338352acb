// aarm review dashboard: progressive enhancement only. Every page works
// without this file. Nothing here builds HTML from data: the live holds
// table is fetched already rendered (and escaped) by the server, and text is
// set with textContent.
(function () {
  "use strict";

  function fmt(ms) {
    if (ms <= 0) return "timed out";
    var s = Math.round(ms / 1000);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s";
    return Math.floor(s / 3600) + "h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-expires]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("data-expires"));
      if (!isNaN(t)) el.textContent = fmt(t - now);
    });
  }

  function liveHolds() {
    var box = document.getElementById("holds");
    if (!box || !window.EventSource) return;
    var url = box.getAttribute("data-live");
    var status = document.getElementById("live-status");
    var pending = false;
    function refresh() {
      if (pending) return;
      pending = true;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          // A redirect means the login ended: show the sign-in page.
          if (r.redirected) { window.location.reload(); throw new Error("signed out"); }
          if (!r.ok) throw new Error(r.status);
          return r.text();
        })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          box.replaceChildren.apply(box, Array.prototype.slice.call(doc.body.childNodes));
          tick();
          if (status) status.textContent = "Updated " + new Date().toLocaleTimeString();
        })
        .catch(function () { if (status) status.textContent = "Could not refresh; reload the page."; })
        .finally(function () { pending = false; });
    }
    var es = new EventSource("/events/holds");
    es.addEventListener("hold", refresh);
    es.addEventListener("open", function () { if (status) status.textContent = "Live"; });
    es.addEventListener("error", function () { if (status) status.textContent = "Reconnecting…"; });
  }

  // A decision button submits once: a double click sends one request (the
  // server is idempotent as well).
  function submitOnce() {
    document.querySelectorAll("form").forEach(function (f) {
      f.addEventListener("submit", function () {
        var b = f.querySelector("button[data-once]");
        if (!b) return;
        setTimeout(function () { b.disabled = true; }, 0);
      });
    });
  }

  // j/k move between rows of a list, Enter opens the selected row, / jumps
  // to the search box.
  function keys() {
    var idx = -1;
    document.addEventListener("keydown", function (e) {
      var tag = (e.target && e.target.tagName) || "";
      if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || e.ctrlKey || e.metaKey || e.altKey) return;
      var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-row]"));
      if (e.key === "/") {
        var s = document.querySelector("[data-search]");
        if (s) { e.preventDefault(); s.focus(); }
        return;
      }
      if ((e.key !== "j" && e.key !== "k") || rows.length === 0) return;
      idx = e.key === "j" ? Math.min(idx + 1, rows.length - 1) : Math.max(idx - 1, 0);
      rows.forEach(function (r) { r.classList.remove("selected"); });
      var row = rows[idx];
      row.classList.add("selected");
      var link = row.querySelector("a.row-link") || row.querySelector("a");
      if (link) link.focus();
      e.preventDefault();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
    liveHolds();
    submitOnce();
    keys();
  });
})();
