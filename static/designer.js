// Journey designer: zoom for the diagram (buttons, and a first fit for diagrams wider than their box).
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
    zoom = Math.max(smallest, Math.min(1, (box.clientWidth - 8) / Number(svg.getAttribute("width"))));
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
  // A diagram wider than its box starts zoomed out to fit, down to half size (it still scrolls beyond).
  document.addEventListener("DOMContentLoaded", function () { fit(0.5); });
})();
