// The little JavaScript the console needs. No inline handlers: the CSP forbids them.
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var target = event.target;
    // The tenant switcher submits as soon as a workspace is picked.
    var form = target.closest("form[data-autosubmit]");
    if (form) { form.requestSubmit(); return; }
    // "Select all" checkbox of a table.
    var group = target.getAttribute("data-check-all");
    if (group) {
      var scope = target.closest("form") || document;
      scope.querySelectorAll('input[type=checkbox][name="' + group + '"]').forEach(function (box) {
        box.checked = target.checked;
      });
    }
  });
  // Messages fade after a while; errors stay.
  function expireMessages(root) {
    root.querySelectorAll(".message-success, .message-info").forEach(function (el) {
      setTimeout(function () { el.classList.add("fade"); }, 5000);
    });
  }
  // Charts: bar widths come from data-pct (inline style attributes are blocked by the CSP).
  function sizeBars(root) {
    root.querySelectorAll("[data-pct]").forEach(function (el) {
      el.style.width = Math.max(0, Math.min(100, parseFloat(el.getAttribute("data-pct")) || 0)) + "%";
    });
  }
  document.addEventListener("DOMContentLoaded", function () { expireMessages(document); sizeBars(document); });
  document.addEventListener("htmx:afterSwap", function (event) { sizeBars(event.target); });
  document.addEventListener("htmx:afterSwap", function (event) { expireMessages(event.target); });
})();
