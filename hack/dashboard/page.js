// Lays out and draws the panels of DASHBOARD (written by render.py) on Grafana's 24-column grid with uPlot.
(function () {
  "use strict";
  // Grafana's classic palette, in its order.
  const PALETTE = ["#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0",
    "#508642", "#CCA300", "#447EBC", "#C15C17"];
  // uPlot's own default y range (10% padding, soft 0).
  const AUTO_RANGE = { min: { pad: 0.1, soft: 0, mode: 3 }, max: { pad: 0.1, soft: 0, mode: 3 } };
  const num = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 3 });

  function si(v) {
    const a = Math.abs(v);
    if (a >= 1e9) return num.format(v / 1e9) + " B";
    if (a >= 1e6) return num.format(v / 1e6) + " M";
    if (a >= 1e3) return num.format(v / 1e3) + " K";
    return num.format(v);
  }

  function seconds(v) {
    const a = Math.abs(v);
    if (a === 0) return "0 s";
    if (a < 1e-3) return num.format(v * 1e6) + " µs";
    if (a < 1) return num.format(v * 1e3) + " ms";
    if (a < 120) return num.format(v) + " s";
    return num.format(v / 60) + " min";
  }

  function formatter(unit) {
    switch (unit) {
      case "s": return seconds;
      case "reqps": return (v) => si(v) + " req/s";
      case "ops": return (v) => si(v) + " ops/s";
      case "currencyUSD": return (v) => "$" + num.format(v);
      default: return si;
    }
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function lastValue(values) {
    for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return values[i];
    return null;
  }

  const grid = document.getElementById("grid");
  const drawn = [];
  for (const panel of DASHBOARD.panels) {
    const box = el("section", panel.type === "row" ? "row" : "panel");
    box.style.gridColumn = `${panel.grid.x + 1} / span ${panel.grid.w}`;
    box.style.gridRow = `${panel.grid.y + 1} / span ${panel.grid.h}`;
    if (panel.type === "row") {
      box.appendChild(el("h2", null, panel.title));
      grid.appendChild(box);
      continue;
    }
    box.appendChild(el("h3", null, panel.title));
    const body = el("div", "body");
    box.appendChild(body);
    const fmt = formatter(panel.unit);
    if (!panel.hasData) {
      body.appendChild(el("div", "nodata", "No data"));
    } else {
      const legend = el("ul", "legend");
      panel.series.forEach((s, i) => {
        const item = el("li");
        const swatch = el("span", "swatch");
        swatch.style.background = PALETTE[i % PALETTE.length];
        item.appendChild(swatch);
        item.appendChild(el("span", "name", s.label));
        const last = lastValue(s.values);
        item.appendChild(el("span", "last", last === null ? "" : fmt(last)));
        legend.appendChild(item);
      });
      box.appendChild(legend);
      drawn.push({ panel, body, fmt });
    }
    grid.appendChild(box);
  }

  // Time ticks as the local wall clock: HH:MM, with seconds when ticks are closer than a minute.
  function clock(u, splits) {
    const seconds = splits.length > 1 && splits[1] - splits[0] < 60;
    return splits.map((t) => new Date(t * 1000).toTimeString().slice(0, seconds ? 8 : 5));
  }

  function draw() {
    const axis = { stroke: "#ccccdc", font: "11px sans-serif", grid: { stroke: "#ffffff17", width: 1 },
      ticks: { stroke: "#ffffff17", width: 1 } };
    for (const { panel, body, fmt } of drawn) {
      body.replaceChildren();
      const opts = {
        width: body.clientWidth,
        height: body.clientHeight,
        legend: { show: false },
        cursor: { show: false },
        // Grafana's habit: a series that is all zeros sits at the bottom of a 0..1 axis, not in the middle.
        scales: { x: { time: true }, y: { range: (u, min, max) => (min === 0 && max === 0 ? [0, 1] :
          uPlot.rangeNum(min, max, AUTO_RANGE)) } },
        axes: [Object.assign({}, axis, { space: 70, values: clock }), Object.assign({}, axis, { size: 78, values: (u, splits) => splits.map(fmt) })],
        series: [{}].concat(panel.series.map((s, i) => {
          const color = PALETTE[i % PALETTE.length];
          return { label: s.label, stroke: color, width: 1.5, fill: color + "1f", points: { size: 4 } };
        })),
      };
      const data = [DASHBOARD.times].concat(panel.series.map((s) => s.values));
      new uPlot(opts, data, body);
    }
    document.body.dataset.rendered = "1";
  }

  // Panels are as wide as the window: redraw when its width changes (its height changes nothing).
  let pending = null;
  let width = window.innerWidth;
  window.addEventListener("resize", () => {
    if (window.innerWidth === width) return;
    width = window.innerWidth;
    document.body.dataset.rendered = "0";
    clearTimeout(pending);
    pending = setTimeout(draw, 100);
  });
  requestAnimationFrame(draw);
})();
