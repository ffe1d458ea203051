// Dashboard charts: each <canvas data-chart="ID"> is drawn from the JSON in <script id="ID">
// (Django's json_script: data, never executed). Chart.js is served from static/vendor; it sets
// canvas sizes through the CSSOM, which the strict CSP allows (no inline style attributes).
(function () {
  "use strict";
  var COLORS = ["#3b5bdb", "#40c057", "#fa5252", "#fab005", "#7950f2", "#15aabf"];
  function draw(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source || !window.Chart) { return; }
    var spec = JSON.parse(source.textContent);
    var datasets = spec.series.map(function (s, i) {
      var color = COLORS[i % COLORS.length];
      return {
        label: s.label, data: s.data, type: s.kind, borderColor: color,
        backgroundColor: s.kind === "bar" ? color + "cc" : color, borderWidth: s.kind === "bar" ? 0 : 2,
        pointRadius: spec.labels.length > 40 ? 0 : 2, spanGaps: true, tension: 0.2
      };
    });
    var options = {
      responsive: true, maintainAspectRatio: false, animation: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
      scales: { y: { beginAtZero: true } }
    };
    if (spec.percent) { options.scales.y.max = 100; }
    canvas.__chart = new window.Chart(canvas, { type: spec.type, data: { labels: spec.labels, datasets: datasets }, options: options });
    canvas.setAttribute("data-drawn", "true");
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("canvas[data-chart]").forEach(draw);
  });
})();
