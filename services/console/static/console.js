// Kefu console: the reader's time zone for server-side dates, and the overview's trend chart.
(function () {
  "use strict";
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && document.cookie.indexOf("kefu_tz=" + encodeURIComponent(zone)) === -1) {
      document.cookie = "kefu_tz=" + encodeURIComponent(zone) + ";path=/;max-age=31536000;samesite=strict";
    }
  } catch (e) { /* no Intl: the console's default zone is used */ }

  function drawTrend() {
    var holder = document.getElementById("trend");
    var source = document.getElementById("trend-data");
    if (!holder || !source || typeof uPlot === "undefined") return;
    var data = JSON.parse(source.textContent);
    holder.textContent = "";
    if (!data.labels.length) return;
    var xs = data.labels.map(function (_, i) { return i; });
    var width = Math.max(holder.clientWidth, 280);
    var number = new Intl.NumberFormat(document.documentElement.lang || undefined);
    new uPlot({
      width: width,
      height: 260,
      legend: { live: false },
      scales: { x: { time: false }, pct: { range: [0, 100] }, n: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
      series: [
        { label: data.names[2], value: function (u, i) { return i == null ? "" : data.labels[i]; } },
        { label: data.names[0], scale: "pct", stroke: "#0b5cad", width: 2, points: { show: true, size: 6 },
          value: function (u, v) { return v == null ? "–" : number.format(v) + "%"; } },
        { label: data.names[1], scale: "n", stroke: "#8a5a00", width: 1, dash: [6, 4], points: { show: true, size: 4 },
          value: function (u, v) { return v == null ? "–" : number.format(v); } }
      ],
      axes: [
        { values: function (u, splits) { return splits.map(function (i) { return Number.isInteger(i) ? (data.labels[i] || "") : ""; }); } },
        { scale: "pct", values: function (u, splits) { return splits.map(function (v) { return number.format(v) + "%"; }); } },
        { scale: "n", side: 1, grid: { show: false }, values: function (u, splits) { return splits.map(function (v) { return number.format(v); }); } }
      ]
    }, [xs, data.csat, data.rated], holder);
  }

  document.addEventListener("DOMContentLoaded", drawTrend);
  document.addEventListener("htmx:afterSettle", drawTrend);
})();
