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
  // Phones: each table cell carries its column's name (data-label), which the narrow layout
  // shows beside the value when a table's rows become stacked cards.
  function labelCells(root) {
    var tables = root.matches && root.matches("table") ? [root] : root.querySelectorAll("table.table");
    Array.prototype.forEach.call(tables, function (table) {
      var names = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) {
        return th.textContent.trim();
      });
      table.querySelectorAll("tbody tr").forEach(function (row) {
        Array.prototype.forEach.call(row.children, function (cell, i) {
          if (names[i] && !cell.hasAttribute("data-label")) { cell.setAttribute("data-label", names[i]); }
        });
      });
    });
  }
  // Phones: the menu button opens and closes the top bar's navigation.
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest ? event.target.closest("[data-nav-toggle]") : null;
    if (!toggle) { return; }
    var open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    toggle.closest(".topbar").classList.toggle("is-open", open);
  });
  document.addEventListener("DOMContentLoaded", function () { expireMessages(document); sizeBars(document); labelCells(document); });
  document.addEventListener("htmx:afterSwap", function (event) { labelCells(event.target.closest("table") || event.target); });
  document.addEventListener("htmx:afterSettle", function () { labelCells(document); });
  document.addEventListener("htmx:afterSwap", function (event) { sizeBars(event.target); });
  document.addEventListener("htmx:afterSwap", function (event) { expireMessages(event.target); });

  // An HTMX answer that is not swapped (403, 404, 409, 413, 429, 5xx; a 400 carries inline
  // errors and is swapped in place) is told in words in the messages area, never by replacing
  // the page, with DEBUG on or off.
  var ERRORS = {
    403: "You may not do this with your role.",
    404: "That is no longer there, or it is not yours to see.",
    409: "Someone changed this at the same time. Reload the page to see the latest.",
    413: "That is too large to send.",
    429: "Too many requests. Wait a moment, then try again."
  };
  function say(text) {
    var box = document.getElementById("messages");
    if (!box) { return; }
    var same = Array.prototype.some.call(box.children, function (el) { return el.textContent === text; });
    if (same) { return; }  // a polled part that keeps failing says it once
    var note = document.createElement("div");
    note.className = "message message-error";
    note.setAttribute("role", "alert");
    note.textContent = text;
    box.appendChild(note);
  }
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    say(ERRORS[status] || "Something went wrong on our side (error " + status +
        "). Try again; if it keeps happening, tell an administrator.");
  });
  // Live parts ([data-live]: the approvals queue, the bell) poll only while someone looks: not
  // while the tab is hidden, not after IDLE_MS without a key, pointer or scroll, and the queue
  // not while the reviewer types a comment or edits arguments (a refresh would wipe it).
  var IDLE_MS = 5 * 60 * 1000;
  var lastActive = Date.now();
  ["keydown", "pointerdown", "pointermove", "scroll", "focusin"].forEach(function (name) {
    document.addEventListener(name, function () { lastActive = Date.now(); }, { passive: true, capture: true });
  });
  function busyIn(root) {
    if (!root) { return false; }
    var typing = Array.prototype.some.call(root.querySelectorAll("input[data-comment]"), function (el) {
      return el.value.trim() !== "";
    });
    var active = document.activeElement;
    return typing || root.querySelector("details.edit-args[open]") !== null ||
      (active && root.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName));
  }
  document.addEventListener("htmx:confirm", function (event) {
    var el = event.target;
    if (!el.hasAttribute || !el.hasAttribute("data-live")) { return; }
    var idle = Date.now() - lastActive > IDLE_MS;
    if (document.hidden || idle || busyIn(el.closest("[data-approval-queue]"))) {
      event.preventDefault();  // skip this poll; the next one asks again
    }
  });
  document.addEventListener("htmx:sendError", function () {
    say("The console could not reach the server. Check the connection and try again.");
  });
})();

// Approvals queue keyboard: j/k next/previous request, a focuses Approve (Enter confirms: one
// stray key never approves), r focuses the reason and makes Enter reject, e opens the editor.
// Enter alone in the reason does nothing (the form's default button is disabled).
(function () {
  "use strict";
  var lastIndex = -1;
  function queue() { return document.querySelector("[data-approval-queue]"); }
  function items() {
    var root = queue();
    return root ? Array.prototype.slice.call(root.querySelectorAll("article.approval-item")) : [];
  }
  function current() {
    var el = document.activeElement;
    return el && el.closest ? el.closest("article.approval-item") : null;
  }
  function focusItem(index) {
    var all = items();
    if (!all.length) { return; }
    var item = all[Math.max(0, Math.min(all.length - 1, index))];
    item.focus();
    item.scrollIntoView({ block: "nearest" });
  }
  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }
  document.addEventListener("keydown", function (event) {
    if (!queue() || event.ctrlKey || event.metaKey || event.altKey) { return; }
    var target = event.target;
    if (event.key === "Enter" && target.matches && target.matches("input[data-comment]")) {
      var form = target.closest("form");
      if (form && form.getAttribute("data-intent") === "reject" && target.value.trim()) {
        event.preventDefault();
        form.querySelector("button[data-reject]").click();
      }
      return;
    }
    if (event.key === "Escape" && typing(target)) {
      var holder = target.closest("article.approval-item");
      if (holder) { holder.focus(); }
      return;
    }
    if (typing(target)) { return; }
    var all = items();
    var item = current();
    var index = item ? all.indexOf(item) : -1;
    if (event.key === "j") { event.preventDefault(); focusItem(index + 1); return; }
    if (event.key === "k") { event.preventDefault(); focusItem(index < 0 ? 0 : index - 1); return; }
    if (!item) { return; }
    if (event.key === "a") {
      var approve = item.querySelector("button[data-approve]");
      if (approve) { event.preventDefault(); approve.focus(); }
    } else if (event.key === "r") {
      var comment = item.querySelector("input[data-comment]");
      if (comment) {
        event.preventDefault();
        comment.closest("form").setAttribute("data-intent", "reject");
        comment.focus();
      }
    } else if (event.key === "e") {
      var editor = item.querySelector("details.edit-args");
      if (editor) {
        event.preventDefault();
        editor.open = true;
        editor.querySelector("textarea").focus();
      }
    }
  });
  // After a decision the list is re-rendered: keep the reviewer's place in it.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var item = event.target.closest ? event.target.closest("article.approval-item") : null;
    lastIndex = item ? items().indexOf(item) : -1;
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    if (lastIndex >= 0 && queue()) {
      focusItem(lastIndex);
      lastIndex = -1;
    }
  });
})();
