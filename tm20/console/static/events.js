// The live events page: the console's event stream, filtered by type and sn, paused on demand
// (events that arrive while paused are kept and shown on resume).  Text only (textContent).
"use strict";
(function () {
  var rows = document.getElementById("event-rows");
  var state = document.getElementById("events-state");
  var pause = document.getElementById("pause");
  var type = document.getElementById("type").value;
  var sn = document.getElementById("esn").value.trim();
  var paused = false;
  var held = [];
  var MAX_ROWS = 500;

  function show(event) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-type", event.type);
    [event.id, event.at, event.type, event.sn || "", JSON.stringify(event.data)].forEach(function (v) {
      var td = document.createElement("td");
      td.textContent = String(v);
      tr.appendChild(td);
    });
    rows.insertBefore(tr, rows.firstChild);
    while (rows.childNodes.length > MAX_ROWS) { rows.removeChild(rows.lastChild); }
  }

  pause.addEventListener("click", function () {
    paused = !paused;
    pause.setAttribute("aria-pressed", paused ? "true" : "false");
    pause.textContent = paused ? "Resume" : "Pause";
    state.textContent = paused ? "paused" : "live";
    if (!paused) { held.forEach(show); held = []; }
  });

  var query = [];
  if (type) { query.push("type=" + encodeURIComponent(type)); }
  if (sn) { query.push("sn=" + encodeURIComponent(sn)); }
  var source = new EventSource("/admin/events/stream" + (query.length ? "?" + query.join("&") : ""));
  source.onopen = function () { state.textContent = paused ? "paused" : "live"; };
  source.onerror = function () { state.textContent = "reconnecting…"; };
  function received(message) {
    var event = JSON.parse(message.data);
    if (paused) { held.push(event); } else { show(event); }
  }
  source.onmessage = received;
  ["log.created", "door.event", "log.quarantined", "terminal.registered", "terminal.pending",
   "terminal.connected", "terminal.disconnected", "terminal.flagged", "terminal.updated",
   "terminal.deleted", "terminal.silent", "terminal.recovered", "terminal.logs_missing",
   "terminal.logs_recovered", "terminal.clock_drift", "user.enrolled", "user.changed",
   "user.deleted", "command.finished", "person.synced", "person.sync_failed"].forEach(function (t) {
    source.addEventListener(t, received);
  });
})();
