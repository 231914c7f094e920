// Herald console: small enhancements over pages that work without JavaScript.
// No inline scripts anywhere (the Content-Security-Policy forbids them): everything is wired
// from data- attributes here.
(function () {
  "use strict";

  function browserTimezone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      return "";
    }
  }

  function fillTimezones(root) {
    root.querySelectorAll("[data-browser-timezone]").forEach(function (input) {
      if (!input.value) input.value = browserTimezone();
    });
  }

  function labels() {
    var node = document.getElementById("status-labels");
    if (!node) return {};
    try {
      return JSON.parse(node.textContent);
    } catch (e) {
      return {};
    }
  }

  var FINAL = ["success", "unknown", "failed", "invalid", "duplicate", "blocked", "cancelled", "received"];
  var numbers = new Intl.NumberFormat(document.documentElement.lang || undefined);

  function applyProgress(data, names) {
    Object.keys(data.messages).forEach(function (id) {
      var row = data.messages[id];
      var done = 0;
      FINAL.forEach(function (status) { done += row.counters[status] || 0; });
      document.querySelectorAll('[data-count^="' + id + ':"]').forEach(function (cell) {
        var status = cell.getAttribute("data-count").split(":")[1];
        cell.textContent = numbers.format(row.counters[status] || 0);
      });
      document.querySelectorAll('progress[data-progress="' + id + '"]').forEach(function (bar) {
        bar.max = Math.max(row.total, 1);
        bar.value = done;
      });
      document.querySelectorAll('[data-done="' + id + '"]').forEach(function (cell) {
        cell.textContent = numbers.format(done) + " / " + numbers.format(row.total);
      });
      document.querySelectorAll('[data-status="' + id + '"]').forEach(function (cell) {
        cell.textContent = names[row.status] || row.status;
        cell.className = "badge status-" + row.status;
      });
    });
  }

  function followProgress(root) {
    root.querySelectorAll("[data-progress-url]").forEach(function (panel) {
      if (panel.dataset.following) return;
      panel.dataset.following = "1";
      var names = labels();
      var source = new EventSource(panel.getAttribute("data-progress-url"));
      source.addEventListener("progress", function (event) {
        var data = JSON.parse(event.data);
        applyProgress(data, names);
        panel.setAttribute("data-final", data.final ? "true" : "false");
        if (data.final) {
          source.close();
          panel.querySelectorAll("[data-hide-when-final]").forEach(function (node) {
            node.hidden = true;
          });
          var refresh = panel.getAttribute("data-refresh-on-final");
          if (refresh && window.htmx) window.htmx.trigger(refresh, "refresh");
        }
      });
      source.addEventListener("end", function () { source.close(); });
    });
  }

  function copyButtons(root) {
    root.querySelectorAll("[data-copy-target]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var target = document.getElementById(button.getAttribute("data-copy-target"));
        if (!target || !navigator.clipboard) return;
        navigator.clipboard.writeText(target.textContent.trim()).then(function () {
          button.textContent = button.getAttribute("data-copied") || "Copied";
        });
      });
    });
  }

  function enhance(root) {
    fillTimezones(root);
    followProgress(root);
    copyButtons(root);
  }

  document.addEventListener("DOMContentLoaded", function () { enhance(document); });
  document.addEventListener("htmx:load", function (event) { enhance(event.target); });
})();
