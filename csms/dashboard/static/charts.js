// Charts with the vendored uPlot (window.uPlot, loaded by index.html).
import { h } from "./ui.js";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c"];

function width(el) {
  return Math.max(320, (el.clientWidth || 800) - 8);
}

/** Energy (kWh, left axis) and power (kW, right axis) of a session over time. */
export function energyPowerChart(container, curve) {
  const opts = {
    width: width(container),
    height: 260,
    series: [
      {},
      { label: "Energy (kWh)", scale: "kWh", stroke: COLORS[0], width: 2, spanGaps: true },
      { label: "Power (kW)", scale: "kW", stroke: COLORS[1], width: 1.5, spanGaps: true },
    ],
    axes: [{}, { scale: "kWh", label: "kWh" }, { scale: "kW", label: "kW", side: 1, grid: { show: false } }],
  };
  const data = (c) => [c.t, c.energy_kwh, c.power_kw];
  const plot = new uPlot(opts, data(curve), container);
  return { update: (c) => plot.setData(data(c)), plot };
}

/** Bars per bucket (x = bucket start, seconds) for one or more series. */
export function bucketChart(container, title, x, series, { bars = true, unit = "" } = {}) {
  const box = h("div", { class: "chart" }, h("h3", {}, title));
  container.append(box);
  const barPaths = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.6, 60] }) : undefined;
  const step = x.length > 1 ? x[1] - x[0] : 3600;
  const opts = {
    width: width(container) / (container.dataset.columns ? Number(container.dataset.columns) : 1) - 16,
    height: 200,
    // Half a bucket of room on each side so the first and last bars show whole; y from 0.
    scales: {
      x: { time: true, range: () => [x[0] - step / 2, x[x.length - 1] + step / 2] },
      y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
    },
    series: [
      {},
      ...series.map((s, i) => ({
        label: s.label,
        stroke: COLORS[i % COLORS.length],
        fill: bars ? `${COLORS[i % COLORS.length]}66` : undefined,
        width: bars ? 1 : 2,
        paths: bars ? barPaths : undefined,
        points: { show: !bars },
      })),
    ],
    axes: [{}, { label: unit }],
  };
  return new uPlot(opts, [x, ...series.map((s) => s.values)], box);
}

/** A histogram: bins with labels as categories on the x axis. */
export function histogramChart(container, title, bins, label) {
  const box = h("div", { class: "chart" }, h("h3", {}, title));
  container.append(box);
  const x = bins.map((_, i) => i);
  const names = bins.map((b) => (b.to === null ? `≥${b.from}` : b.from === null ? `<${b.to}` : `${b.from}–${b.to}`));
  const barPaths = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.7, 80] }) : undefined;
  return new uPlot(
    {
      width: width(container) / 2 - 16,
      height: 200,
      scales: { x: { time: false, range: [-0.5, bins.length - 0.5] }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      series: [{}, { label, stroke: COLORS[2], fill: `${COLORS[2]}66`, paths: barPaths }],
      axes: [{ values: (u, splits) => splits.map((v) => names[v] ?? "") , splits: () => x }, { label: "sessions" }],
    },
    [x, bins.map((b) => b.sessions)],
    box,
  );
}

/** A site's limit in force and, per line, the allocated and measured current (A) over time. */
export function loadChart(container, history, window = null) {
  const data = (d) => [d.t, d.limit, d.a1, d.a2, d.a3, d.m1, d.m2, d.m3];
  const line = (label, stroke, dash) => ({ label, stroke, width: 1.5, spanGaps: true, dash });
  const plot = new uPlot(
    {
      width: width(container),
      height: 260,
      series: [
        {},
        { label: "Limit (A)", stroke: COLORS[1], width: 2, spanGaps: true },
        line("Allocated L1", "#1d4ed8"), line("Allocated L2", "#3b82f6"), line("Allocated L3", "#93c5fd"),
        line("Measured L1", "#15803d", [4, 3]), line("Measured L2", "#22c55e", [4, 3]), line("Measured L3", "#86efac", [4, 3]),
      ],
      axes: [{}, { label: "A" }],
      scales: {
        // The whole window (e.g. the last 24 h), however few plans fall in it.
        x: window ? { time: true, range: () => [window.from, window.to] } : { time: true },
        y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
    },
    data(history),
    container,
  );
  return { update: (d) => plot.setData(data(d)), plot };
}
