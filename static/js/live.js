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
  document.addEventListener("DOMContentLoaded", showMode);
  document.addEventListener("htmx:afterSettle", showMode);
  document.addEventListener("change", function (event) {
    if (event.target.name === "mode") showMode();
  });
})();
