// The chat assistant: after a message is sent, empty the box and keep the newest turn in view.
(function () {
  "use strict";
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.target.closest ? event.target.closest("form[data-chat-form]") : null;
    if (form && event.detail.successful) {
      form.reset();
      var error = document.getElementById("chat-error");
      if (error) { error.textContent = ""; }
    }
  });
  function scrollThread() {
    var thread = document.getElementById("thread");
    if (thread) { thread.scrollTop = thread.scrollHeight; }
  }
  document.addEventListener("htmx:afterSwap", scrollThread);
  document.addEventListener("htmx:sseMessage", scrollThread);
  document.addEventListener("DOMContentLoaded", scrollThread);
  // Enter sends, Shift+Enter starts a new line.
  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (event.key !== "Enter" || event.shiftKey || !box.matches || !box.matches("#chat-text")) { return; }
    event.preventDefault();
    var form = box.closest("form");
    if (form && box.value.trim()) { form.requestSubmit(); }
  });
})();
