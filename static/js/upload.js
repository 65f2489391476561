// The export upload form: drag and drop, a size check before sending, Signal-only fields shown
// (and the passphrase required and checked) only for Signal, the owner's name for the kinds
// that take it, and an upload progress bar. htmx sends the form (an XHR whose upload progress
// it reports as htmx:xhr:progress); without JavaScript it is a plain multipart form post.
(function () {
  function formatBytes(n) {
    var units = ["bytes", "KB", "MB", "GB", "TB"];
    var i = 0;
    // Units of 1024, as Django's filesizeformat (the export page) counts them.
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  }

  function setup(form) {
    if (form.dataset.uploadReady) return;
    form.dataset.uploadReady = "1";
    var input = form.querySelector("input[type=file]");
    var zone = form.querySelector("[data-dropzone]");
    var info = form.querySelector("[data-file-info]");
    var kind = form.querySelector("select[name=kind]");
    var passphrase = form.querySelector("input[name=passphrase]");
    var submit = form.querySelector("button[type=submit]");
    var progress = form.querySelector("[data-upload-progress]");
    var bar = progress.querySelector(".progress");
    var note = progress.querySelector("[data-upload-note]");
    var maxBytes = parseInt(form.dataset.maxBytes, 10);
    var tooBig = false;

    function chosenKind() {
      if (kind.value) return kind.value;
      var file = input.files[0];
      // A form sent back with errors: the server says what the file it got was.
      if (!file) return form.dataset.detectedKind || "";
      var name = file.name.toLowerCase();
      if (name.endsWith(".backup")) return "signal";
      if (name === "chat.db") return "imessage";
      // The file the server has just read, chosen again as it asked: what it found still holds.
      if (file.name === form.dataset.detectedName) return form.dataset.detectedKind || "";
      return "";
    }

    function update() {
      var file = input.files[0];
      tooBig = !!file && file.size > maxBytes;
      if (file) {
        info.textContent = tooBig
          ? file.name + " is " + formatBytes(file.size) + ", more than the " + formatBytes(maxBytes) + " limit."
          : file.name + " · " + formatBytes(file.size);
        info.classList.toggle("errorlist", tooBig);
      }
      submit.disabled = tooBig;
      var isSignal = chosenKind() === "signal";
      form.querySelectorAll("[data-signal-only]").forEach(function (el) { el.hidden = !isSignal; });
      // The browser then refuses a missing or mistyped passphrase before sending the file.
      if (passphrase) passphrase.required = isSignal;
      // Whose phone: Signal may say, iMessage and signal-export must (they call everyone's owner "me").
      var owner = form.querySelector("input[name=owner_name]");
      var ownerNeeded = ["imessage", "signal_desktop"].indexOf(chosenKind()) >= 0;
      form.querySelectorAll("[data-owner-field]").forEach(function (el) { el.hidden = !(isSignal || ownerNeeded); });
      if (owner) owner.required = ownerNeeded;
      var mayBeSlack = !isSignal && (!kind.value || kind.value === "slack");
      form.querySelectorAll("[data-slack-only]").forEach(function (el) { el.hidden = !mayBeSlack; });
    }

    input.addEventListener("change", update);
    kind.addEventListener("change", update);
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (event) {
        event.preventDefault();
        zone.classList.add("dragging");
      });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function () { zone.classList.remove("dragging"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
        update();
      }
    });

    form.addEventListener("htmx:beforeRequest", function (event) {
      if (tooBig) { event.preventDefault(); return; }
      progress.hidden = false;
      submit.disabled = true;
      note.textContent = "Starting the upload…";
    });
    form.addEventListener("htmx:xhr:progress", function (event) {
      var d = event.detail;
      if (!d.lengthComputable || !d.total) return;
      var percent = Math.floor((100 * d.loaded) / d.total);
      bar.firstElementChild.style.width = percent + "%";
      bar.setAttribute("aria-valuenow", percent);
      note.textContent = percent < 100
        ? "Uploading: " + formatBytes(d.loaded) + " of " + formatBytes(d.total) + " (" + percent + "%)"
        : "Uploaded; checking the file…";
    });
    form.addEventListener("htmx:afterRequest", function (event) {
      if (event.detail.successful) return;
      submit.disabled = false;
      var xhr = event.detail.xhr;
      var status = xhr ? xhr.status : 0;
      if (status === 403 || status === 401) {
        note.textContent = "The upload was refused: your session may have ended. Reload the page, log in again and upload the file again.";
      } else if (status === 413) {
        note.textContent = "The file is bigger than the web server in front of joe accepts (its own upload limit, e.g. nginx's client_max_body_size); ask whoever runs the site to raise it.";
      } else if (status >= 500) {
        note.textContent = "The server failed while taking the upload (error " + status + "); its log says why. Try again, or ask whoever runs the site.";
      } else {
        note.textContent = "The upload failed. Check your connection and try again.";
      }
    });
    update();
  }

  function setupAll(root) {
    (root || document).querySelectorAll("form[data-upload]").forEach(setup);
  }
  document.addEventListener("DOMContentLoaded", function () { setupAll(document); });
  // After a failed validation the form comes back as a fresh partial.
  document.addEventListener("htmx:load", function (event) {
    var el = event.detail.elt;
    if (el && el.matches && el.matches("form[data-upload]")) setup(el);
    else if (el && el.querySelectorAll) setupAll(el);
  });
})();
