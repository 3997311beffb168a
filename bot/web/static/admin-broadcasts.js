// The progress of a broadcast, updated in place while messages wait (no reload, so the
// reader's place and focus stay where they are); stops once nothing waits any more.
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box || !box.dataset.refresh) { return; }
  var every = Math.max(2, parseInt(box.dataset.refresh, 10) || 5) * 1000;
  function update() {
    fetch(window.location.pathname, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        box.querySelectorAll("dd[data-stage]").forEach(function (cell) {
          cell.textContent = String(data.stages[cell.dataset.stage] || 0);
        });
        Object.keys(data.channels).forEach(function (channel) {
          var stages = data.channels[channel];
          box.querySelectorAll('td[data-channel="' + channel + '"]').forEach(function (cell) {
            cell.textContent = String(stages[cell.dataset.stage] || 0);
          });
        });
        if (data.finished) { window.location.reload(); } else { window.setTimeout(update, every); }
      })
      .catch(function () { window.setTimeout(update, every * 2); });
  }
  window.setTimeout(update, every);
})();
