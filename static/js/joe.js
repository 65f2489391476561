// joe's small progressive enhancements; every page works without them.
(function () {
  // Toasts that say something went wrong stay until dismissed (there may be a lot to read);
  // the others fade after a few seconds, unless the pointer or focus is on them.
  function fadeToasts(root) {
    root.querySelectorAll(".toast:not([data-handled])").forEach(function (toast) {
      toast.setAttribute("data-handled", "");
      if (toast.classList.contains("toast-error")) {
        toast.setAttribute("role", "alert");
        var close = document.createElement("button");
        close.type = "button";
        close.className = "toast-close";
        close.setAttribute("aria-label", "Dismiss");
        close.textContent = "\u00d7";
        close.addEventListener("click", function () { toast.remove(); });
        toast.appendChild(close);
        return;
      }
      var fade = function () {
        if (toast.matches(":hover, :focus-within")) { setTimeout(fade, 2000); return; }
        toast.classList.add("fading");
        setTimeout(function () { toast.remove(); }, 500);
      };
      setTimeout(fade, 6000);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { fadeToasts(document); });
  document.addEventListener("htmx:afterSwap", function () { fadeToasts(document); });
  // Server-sent toasts: views trigger {"toast": {"level": ..., "message": ...}} via HX-Trigger.
  document.addEventListener("toast", function (event) {
    var box = document.getElementById("toasts");
    if (!box || !event.detail) return;
    var div = document.createElement("div");
    div.className = "toast toast-" + (event.detail.level || "info");
    div.setAttribute("role", "status");
    div.textContent = event.detail.message;  // textContent: never HTML
    box.appendChild(div);
    fadeToasts(box);
  });
  document.addEventListener("click", function (event) {
    var input = event.target.closest("input.copy");
    if (input) { input.select(); }
    // A "Copy" button copies the link in the input just before it.
    var button = event.target.closest("button[data-copy]");
    if (!button) { return; }
    var field = button.previousElementSibling;
    while (field && !(field.matches && field.matches("input.copy"))) { field = field.previousElementSibling; }
    if (!field) { return; }
    var done = function () {
      document.dispatchEvent(new CustomEvent("toast", {detail: {level: "success", message: "Link copied."}}));
    };
    field.select();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand("copy") && done(); });
    } else if (document.execCommand("copy")) {
      done();
    }
  });
})();
