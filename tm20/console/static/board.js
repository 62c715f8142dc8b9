// The live board: rows are rebuilt from /admin/terminals.json whenever the event stream says a
// terminal connected, disconnected, registered, changed or punched.  Text only (textContent):
// names come from devices and are never parsed as HTML.
"use strict";
(function () {
  var tbody = document.getElementById("board-rows");
  var live = document.getElementById("live");
  var stateSelect = document.getElementById("state");
  var search = document.getElementById("q");
  var WIDE = ["timezone", "model", "lastSeenAgo", "drift", "users", "logs", "backlog"];
  var latest = null;
  var timer = null;

  function cell(row, text, wide, title) {
    var td = document.createElement("td");
    if (wide) { td.className = "wide"; }
    if (title) { td.title = title; }
    td.textContent = text === null || text === undefined ? "" : String(text);
    row.appendChild(td);
    return td;
  }

  function visible(r) {
    var state = stateSelect.value;
    var q = search.value.trim().toLowerCase();
    if (state && r.states.indexOf(state) < 0) { return false; }
    if (q && (r.sn + " " + r.name + " " + r.model).toLowerCase().indexOf(q) < 0) { return false; }
    return true;
  }

  function render() {
    if (!latest) { return; }
    var fragment = document.createDocumentFragment();
    latest.rows.forEach(function (r) {
      if (!visible(r)) { return; }
      var tr = document.createElement("tr");
      tr.setAttribute("data-sn", r.sn);
      var first = document.createElement("td");
      var a = document.createElement("a");
      a.href = r.url;
      a.textContent = r.name || r.sn;
      var sn = document.createElement("div");
      sn.className = "sn";
      sn.textContent = r.sn;
      first.appendChild(a);
      first.appendChild(sn);
      tr.appendChild(first);
      var states = document.createElement("td");
      r.states.forEach(function (s) {
        var b = document.createElement("span");
        b.className = "badge state-" + s;
        b.textContent = s;
        states.appendChild(b);
        states.appendChild(document.createTextNode(" "));
      });
      tr.appendChild(states);
      cell(tr, r.timezone, true);
      cell(tr, (r.model + " " + r.firmware).trim(), true);
      cell(tr, r.lastSeenAgo, false, r.lastSeen || "");
      cell(tr, r.drift === null ? "" : r.drift + "s", true);
      cell(tr, r.users, true);
      cell(tr, r.logs, true);
      cell(tr, r.backlog, true);
      fragment.appendChild(tr);
    });
    tbody.textContent = "";
    tbody.appendChild(fragment);
    Object.keys(latest.counts).forEach(function (k) {
      var el = document.querySelector('[data-count="' + k + '"]');
      if (el) { el.textContent = String(latest.counts[k]); }
    });
    var total = document.querySelector('[data-count="total"]');
    if (total) { total.textContent = String(latest.total); }
  }

  function refresh() {
    timer = null;
    fetch("/admin/terminals.json", { credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 401) { window.location = "/admin/login"; return null; }
        return response.json();
      })
      .then(function (body) { if (body) { latest = body; render(); } })
      .catch(function () { live.textContent = "offline: retrying"; });
  }

  // terminal changes show within a quarter second; punches (many at busy sites) at most
  // once a second per open board
  function soon() {
    if (timer === null) { timer = window.setTimeout(refresh, 250); }
  }
  function later() {
    if (timer === null) { timer = window.setTimeout(refresh, 1000); }
  }

  stateSelect.addEventListener("change", render);
  search.addEventListener("input", render);
  document.getElementById("board-filter").addEventListener("submit", function (e) {
    if (latest) { e.preventDefault(); render(); }
  });

  var source = new EventSource("/admin/events/stream?type=terminal.*,log.created");
  source.onopen = function () { live.textContent = "live"; refresh(); };
  source.onerror = function () { live.textContent = "reconnecting…"; };
  source.onmessage = soon;
  ["terminal.registered", "terminal.pending", "terminal.connected", "terminal.disconnected",
   "terminal.flagged", "terminal.updated", "terminal.deleted", "terminal.silent",
   "terminal.recovered", "terminal.clock_drift"].forEach(function (type) {
    source.addEventListener(type, soon);
  });
  source.addEventListener("log.created", later);
  // a board left open also refreshes its "last seen" ages
  window.setInterval(refresh, 30000);
})();
