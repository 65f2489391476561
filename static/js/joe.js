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
    // The same words already on screen (a page that polls, failing every second): once is enough.
    var same = Array.prototype.some.call(box.children, function (toast) {
      return toast.getAttribute("data-message") === event.detail.message;
    });
    if (same) return;
    var div = document.createElement("div");
    div.className = "toast toast-" + (event.detail.level || "info");
    div.setAttribute("role", "status");
    div.setAttribute("data-message", event.detail.message);
    div.textContent = event.detail.message;  // textContent: never HTML
    box.appendChild(div);
    fadeToasts(box);
  });
  // An htmx action that failed (a vote on a fake vetoed meanwhile, a stale form, the network)
  // would otherwise do nothing at all: say so, unless the server sent its own toast.
  function errorToast(message) {
    document.dispatchEvent(new CustomEvent("toast", {detail: {level: "error", message: message}}));
  }
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.getResponseHeader("HX-Trigger")) return;
    if (xhr.status === 404) {
      errorToast("That is no longer here: it was hidden, vetoed or deleted meanwhile. Reload the page to see what is.");
    } else if (xhr.status === 403) {
      errorToast("That was refused, perhaps because you logged in again elsewhere. Reload the page and try again.");
    } else {
      errorToast("That did not work (error " + xhr.status + "). Try again, or reload the page.");
    }
  });
  // A poll cut off by leaving the page is no lost connection (Firefox reports it as one).
  var leaving = false;
  window.addEventListener("beforeunload", function () { leaving = true; });
  window.addEventListener("pageshow", function () { leaving = false; });
  document.addEventListener("htmx:sendError", function () {
    if (leaving) return;
    errorToast("joe could not be reached: check your connection and try again.");
  });
  // An htmx action whose control went with the swap (a speaker merged away) would leave the
  // focus on the page itself, and the next Tab at its top: the swapped-in part marks where it
  // goes instead (the speaker merged into, say) with data-focus-after-swap.
  document.addEventListener("htmx:afterSettle", function () {
    var next = document.querySelector("[data-focus-after-swap]");
    if (!next) return;
    next.removeAttribute("data-focus-after-swap");
    if (!document.activeElement || document.activeElement === document.body) next.focus();
  });
  // A page that refreshes itself (a run, say) marks its state with data-status-announce: when
  // that text changes, it is read out once from a live region that stays put (the swapped
  // panel itself would be re-inserted, which screen readers do not announce).
  var lastStatus = null;
  function statusText() {
    var marked = document.querySelector("[data-status-announce]");
    return marked ? marked.getAttribute("data-status-announce") : null;
  }
  document.addEventListener("DOMContentLoaded", function () { lastStatus = statusText(); });
  document.addEventListener("htmx:afterSettle", function () {
    var text = statusText();
    var announcer = document.getElementById("status-announcer");
    if (text && announcer && text !== lastStatus) announcer.textContent = text;
    lastStatus = text;
  });
  // <form data-confirm="Sure?">: asks before it is sent (instead of an inline onsubmit, which
  // the Content-Security-Policy forbids). Capturing, so it runs before the guard below.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (!question) return;
    // A second click while the first is being sent: the guard below drops it, unasked.
    if (form.hasAttribute("data-submitting")) { event.preventDefault(); return; }
    if (!window.confirm(question)) event.preventDefault();
  }, true);
  // A plain form post is sent once: a double click (or a second Enter) while the next page loads
  // would send it again, and start two training runs, say. htmx forms (htmx has already taken
  // their submit), GET forms (filters may be sent again), forms that open elsewhere and forms
  // marked data-allow-resubmit are left alone. The server refuses obvious twins too.
  function submitButtons(form) {
    return Array.prototype.filter.call(form.elements, function (el) {
      return el.matches("button[type=submit], button:not([type]), input[type=submit], input[type=image]");
    });
  }
  function guarded(form, submitter) {
    var method = ((submitter && submitter.getAttribute("formmethod")) || form.getAttribute("method") || "get").toLowerCase();
    var target = (submitter && submitter.getAttribute("formtarget")) || form.getAttribute("target") || "";
    return method === "post" && (target === "" || target === "_self") &&
      !form.hasAttribute("data-allow-resubmit") &&
      !form.matches("[hx-post], [hx-get], [hx-put], [hx-patch], [hx-delete], [data-hx-post], [data-hx-get]") &&
      !form.closest("[hx-boost=true], [data-hx-boost=true]");
  }
  var idleLabels = new WeakMap();  // a button's own content while it reads "Starting…"
  function release(form) {
    form.removeAttribute("data-submitting");
    form.removeAttribute("aria-busy");
    submitButtons(form).forEach(function (button) {
      if (!button.hasAttribute("data-submit-guarded")) return;
      button.removeAttribute("data-submit-guarded");
      button.removeAttribute("aria-disabled");
      button.disabled = false;
      if (idleLabels.has(button)) {
        button.innerHTML = idleLabels.get(button);
        idleLabels.delete(button);
      }
    });
  }
  // Bubbling to the document, this runs after the form's own handlers: htmx's, or an onsubmit
  // confirm() that was turned down, have already prevented the submission.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || !guarded(form, event.submitter)) return;
    if (form.hasAttribute("data-submitting")) { event.preventDefault(); return; }
    form.setAttribute("data-submitting", "");
    form.setAttribute("aria-busy", "true");
    var buttons = submitButtons(form).filter(function (button) { return !button.disabled; });
    buttons.forEach(function (button) {
      button.setAttribute("data-submit-guarded", "");
      button.setAttribute("aria-disabled", "true");
      var busy = button === event.submitter && button.getAttribute("data-busy-text");
      if (busy && button.tagName === "BUTTON") {
        idleLabels.set(button, button.innerHTML);
        button.textContent = busy;  // textContent: never HTML
      }
    });
    // Disabled only once the browser has gathered the form's data: a disabled button's
    // name=value (Approve or Reject, say) would be left out of the post.
    setTimeout(function () {
      buttons.forEach(function (button) {
        if (button.hasAttribute("data-submit-guarded")) button.disabled = true;
      });
    }, 0);
    // Still here long after (the user stopped the load with Esc, or it failed): usable again.
    setTimeout(function () { if (form.isConnected) release(form); }, 20000);
  });
  // Back to a page the browser kept in memory: its forms can be sent again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form[data-submitting]").forEach(release);
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
  // A menu (<details data-menu>) closes on a click elsewhere, and on Escape with the focus back
  // on its summary, as a menu does.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details[data-menu][open]").forEach(function (menu) {
      if (!menu.contains(event.target)) { menu.open = false; }
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") { return; }
    var menu = event.target.closest && event.target.closest("details[data-menu][open]");
    if (!menu) { return; }
    menu.open = false;
    menu.querySelector("summary").focus();
  });
})();
