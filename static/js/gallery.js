// Gallery enhancements: a typewriter reveal the first time this browser sees a snippet.
// Text is put back with textContent only (never innerHTML), so model output stays text.
(function () {
  "use strict";
  var KEY = "joe.seenSnippets";
  var KEEP = 5000;
  var reduceMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;

  function loadSeen() {
    try { return JSON.parse(localStorage.getItem(KEY) || "[]"); } catch (e) { return []; }
  }
  var seenList = loadSeen();
  var seen = new Set(seenList.map(String));
  function remember(id) {
    if (seen.has(id)) return;
    seen.add(id);
    seenList.push(id);
    if (seenList.length > KEEP) seenList = seenList.slice(-KEEP);
    try { localStorage.setItem(KEY, JSON.stringify(seenList)); } catch (e) { /* private mode */ }
  }

  function typeOut(card) {
    var parts = Array.prototype.map.call(card.querySelectorAll(".bubble-text"), function (el) {
      var text = el.textContent;
      el.textContent = "";
      return { el: el, text: text };
    });
    var total = parts.reduce(function (n, p) { return n + p.text.length; }, 0);
    var delay = Math.max(8, Math.min(28, 1600 / Math.max(total, 1)));
    var i = 0;
    card.classList.add("typing");
    card.setAttribute("aria-busy", "true");
    function step() {
      while (i < parts.length && parts[i].el.textContent.length >= parts[i].text.length) i++;
      if (i >= parts.length) {
        card.classList.remove("typing");
        card.removeAttribute("aria-busy");
        return;
      }
      var part = parts[i];
      part.el.textContent = part.text.slice(0, part.el.textContent.length + 1);
      setTimeout(step, delay);
    }
    step();
  }

  var observer = ("IntersectionObserver" in window) ? new IntersectionObserver(function (entries) {
    entries.forEach(function (entry) {
      if (!entry.isIntersecting) return;
      observer.unobserve(entry.target);
      remember(entry.target.dataset.snippet);
      typeOut(entry.target);
    });
  }, { threshold: 0.3 }) : null;

  function setUp(root) {
    root.querySelectorAll(".snippet[data-snippet]:not([data-reveal])").forEach(function (card) {
      card.setAttribute("data-reveal", "done");
      var id = card.dataset.snippet;
      if (seen.has(id) || reduceMotion || !observer) { remember(id); return; }
      card.setAttribute("data-reveal", "pending");
      observer.observe(card);
    });
  }

  // "More" asks for the next page by position: cards that moved down meanwhile (a batch added
  // new fakes, votes reordered the top) come again. Keep the copy already on the page: two
  // cards with the same ids would each show their own counts.
  function dropRepeats() {
    var onPage = new Set();
    document.querySelectorAll("#snippets .snippet[data-snippet]").forEach(function (card) {
      if (onPage.has(card.dataset.snippet)) card.remove();
      else onPage.add(card.dataset.snippet);
    });
  }

  // "More" loads as it comes into view, which a Tab onto it does too: the link goes with the
  // swap and the focus with it, and the next Tab would start again at the top of the page.
  // The focus goes on to the first new card instead (or to the next "More"). Noted as the
  // request starts: the link is hidden while it loads, which already takes the focus away.
  var cardBeforeMore = null;
  document.addEventListener("htmx:beforeRequest", function (event) {
    var more = event.detail.elt;
    cardBeforeMore = more.classList.contains("more") && more.contains(document.activeElement)
      ? more.previousElementSibling : null;
  });
  function focusAfterMore() {
    var card = cardBeforeMore;
    cardBeforeMore = null;
    if (!card || !card.isConnected) return;
    var next = card.nextElementSibling;
    if (next && next.classList.contains("more")) next = next.querySelector("a");
    if (!next || !next.matches(".snippet, a")) next = card;
    if (next.matches(".snippet")) next.setAttribute("tabindex", "-1");
    next.focus();
  }

  document.addEventListener("DOMContentLoaded", function () { setUp(document); });
  document.addEventListener("htmx:afterSwap", function (event) {
    dropRepeats();
    setUp(event.detail.target.parentNode || document);
    focusAfterMore();
  });
})();
