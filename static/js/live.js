// Live generation page: show only the inputs for the chosen mode. The page works without this
// (both inputs show); the streamed text itself arrives by htmx polling, as escaped HTML.
(function () {
  function showMode() {
    var form = document.getElementById("live-form");
    if (!form) return;
    var checked = form.querySelector("input[name=mode]:checked");
    var mode = checked ? checked.value : "speaker";
    form.querySelectorAll("[data-mode]").forEach(function (el) {
      el.hidden = el.getAttribute("data-mode") !== mode;
    });
  }
  // The stream's status line, read out once when it changes (not on every poll).
  function announce() {
    var announcer = document.getElementById("live-announcer");
    var status = document.querySelector("#live-stream [data-announce]");
    var text = status ? status.textContent.replace(/\s+/g, " ").trim() : "";
    if (announcer && text && announcer.textContent !== text) announcer.textContent = text;
  }
  document.addEventListener("DOMContentLoaded", function () { showMode(); announce(); });
  document.addEventListener("htmx:afterSettle", function () { showMode(); announce(); });
  document.addEventListener("change", function (event) {
    if (event.target.name === "mode") showMode();
  });
})();
