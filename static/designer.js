// Journey designer: zoom for the diagram (buttons, and a first fit for diagrams larger than their box).
// Fit fits both the width and the height of the box, so the whole diagram is in view.
(function () {
  "use strict";
  let zoom = 1;

  function applyZoom() {
    const svg = document.querySelector("#diagram svg");
    if (!svg) return;
    const width = Number(svg.getAttribute("width"));
    const height = Number(svg.getAttribute("height"));
    svg.style.width = Math.round(width * zoom) + "px";
    svg.style.height = Math.round(height * zoom) + "px";
  }

  function fit(smallest) {
    const box = document.getElementById("diagram");
    const svg = box && box.querySelector("svg");
    if (!svg) return;
    const style = window.getComputedStyle(box);
    const maxHeight = parseFloat(style.maxHeight);
    const height = Number.isFinite(maxHeight) ? maxHeight : window.innerHeight - box.getBoundingClientRect().top;
    const byWidth = (box.clientWidth - 8) / Number(svg.getAttribute("width"));
    const byHeight = (height - 8) / Number(svg.getAttribute("height"));
    zoom = Math.max(smallest, Math.min(1, byWidth, byHeight));
    applyZoom();
  }

  document.addEventListener("click", function (event) {
    const zoomButton = event.target.closest("[data-zoom]");
    if (zoomButton) {
      const how = zoomButton.dataset.zoom;
      if (how === "fit") { fit(0.1); return; }
      zoom = Math.max(0.3, Math.min(2.5, zoom * (how === "in" ? 1.25 : 0.8)));
      applyZoom();
    }
  });

  document.addEventListener("htmx:afterSettle", applyZoom);
  // A diagram larger than its box starts zoomed out to fit, down to 40 % (it still scrolls beyond).
  document.addEventListener("DOMContentLoaded", function () { fit(0.4); });
})();
