// Small behaviours every page shares, kept out of the templates (no inline script or handlers).
(function () {
  "use strict";
  // Diagram nodes are SVG <a> elements: htmx loads them into the page, so the browser must not navigate.
  document.addEventListener("click", function (event) {
    const link = event.target.closest && event.target.closest("a.node-link");
    if (link) event.preventDefault();
  });
})();

// A table wider than the screen scrolls inside its box: make that box reachable by keyboard (and named).
(function () {
  "use strict";
  function markScrollable(root) {
    (root || document).querySelectorAll(".table-scroll").forEach(function (box) {
      if (box.scrollWidth > box.clientWidth + 1) {
        box.tabIndex = 0;
        box.setAttribute("role", "region");
        if (!box.hasAttribute("aria-label")) {
          const caption = box.querySelector("table[aria-label], table[id]");
          box.setAttribute("aria-label", "Table" + (caption && caption.id ? " " + caption.id.replace(/-/g, " ") : "") + ", scrolls sideways");
        }
      } else if (box.getAttribute("role") === "region") {
        box.removeAttribute("tabindex");
        box.removeAttribute("role");
      }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { markScrollable(document); });
  document.addEventListener("htmx:load", function () { markScrollable(document); });
  window.addEventListener("resize", function () { markScrollable(document); });
})();

// Pollers marked `data-poll-visible` skip their request while the tab is hidden. Done here, not with an
// hx-trigger filter: filters are evaluated JavaScript, which the CSP (and htmx's allowEval: false) refuse.
document.addEventListener("htmx:beforeRequest", function (event) {
  const source = event.detail && event.detail.elt;
  if (document.visibilityState !== "visible" && source && source.hasAttribute("data-poll-visible")) {
    event.preventDefault();
  }
});
