// Times in the operator's own time zone: every <time datetime="…Z" data-format="…"> rendered by the
// server with a UTC fallback is rewritten here, with the zone named; relative ones ("in 1 h 59 min")
// are refreshed every 15 s and after every htmx swap. Two units, rounded down in the smaller one.
(function () {
  "use strict";
  const UNITS = [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]];
  const zoneName = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
  const withZone = { timeZoneName: "short" };
  const formats = {
    datetime: new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" }),
    clock: new Intl.DateTimeFormat(undefined, Object.assign({ hour: "2-digit", minute: "2-digit" }, withZone)),
    date: new Intl.DateTimeFormat(undefined, { dateStyle: "medium" }),
    full: new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" }),
  };

  function spanText(seconds) {
    seconds = Math.floor(Math.abs(seconds));
    for (let index = 0; index < UNITS.length; index += 1) {
      const [unit, size] = UNITS[index];
      if (seconds >= size || unit === "s") {
        let text = Math.floor(seconds / size) + " " + unit;
        if (unit !== "s") {
          const [smaller, smallerSize] = UNITS[index + 1];
          const rest = Math.floor((seconds % size) / smallerSize);
          if (rest) text += " " + rest + " " + smaller;
        }
        return text;
      }
    }
    return "0 s";
  }

  function relative(moment) {
    const seconds = (Date.now() - moment.getTime()) / 1000;
    if (Math.abs(seconds) < 1) return "just now";
    return seconds > 0 ? spanText(seconds) + " ago" : "in " + spanText(seconds);
  }

  function render(element) {
    const moment = new Date(element.getAttribute("datetime"));
    if (Number.isNaN(moment.getTime())) return;
    const kind = element.dataset.format || "relative";
    let text;
    if (kind === "relative") text = relative(moment);
    else if (kind === "datetime") text = formats.datetime.format(moment) + " (" + zoneName + ")";
    else text = formats[kind].format(moment);
    if (element.textContent !== text) element.textContent = text;
    element.title = formats.full.format(moment) + " · " + zoneName;
  }

  function renderAll(root) {
    (root || document).querySelectorAll("time[datetime][data-format]").forEach(render);
  }

  window.journeyTimes = { spanText: spanText, relative: relative, zoneName: zoneName };
  document.addEventListener("DOMContentLoaded", function () {
    renderAll(document);
    document.querySelectorAll("[data-time-zone]").forEach(function (element) { element.textContent = zoneName; });
  });
  document.addEventListener("htmx:load", function (event) { renderAll(event.target); });
  setInterval(function () {
    document.querySelectorAll('time[datetime][data-format="relative"]').forEach(render);
  }, 15000);
})();
