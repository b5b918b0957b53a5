// Schedules in the browser's time zone (no inline scripts: loaded as a file).
// - <input type="datetime-local" data-offset-field="ID">: keeps the hidden input ID filled with the
//   browser's UTC offset (minutes east of UTC) for the chosen date, so DST of that date counts.
// - <time datetime="...Z" data-local>: shown in the browser's time zone.
(function () {
  "use strict";

  function offsetFor(value) {
    var date = value ? new Date(value) : new Date();
    return isNaN(date.getTime()) ? "" : String(-date.getTimezoneOffset());
  }

  function pad(number) {
    return (number < 10 ? "0" : "") + number;
  }

  function localInputValue(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + "T" +
      pad(date.getHours()) + ":" + pad(date.getMinutes());
  }

  function wire(root) {
    root.querySelectorAll("input[type=datetime-local][data-offset-field]").forEach(function (input) {
      var hidden = document.getElementById(input.dataset.offsetField);
      if (!hidden || input.dataset.wired) return;
      input.dataset.wired = "1";
      var update = function () { hidden.value = offsetFor(input.value); };
      input.min = localInputValue(new Date());
      input.addEventListener("input", update);
      input.addEventListener("change", update);
      update();
    });
    root.querySelectorAll("time[data-local]").forEach(function (element) {
      var date = new Date(element.getAttribute("datetime"));
      if (!isNaN(date.getTime())) {
        element.textContent = date.toLocaleString(undefined, {dateStyle: "medium", timeStyle: "short"});
        element.title = date.toISOString();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () { wire(document); });
  document.addEventListener("htmx:afterSwap", function (event) { wire(event.target); });
})();
