/*
 * <moksha-chart topic="moksha.demo.system" fields="load1,load5,load15"
 *               labels="1 min,5 min,15 min" points="120" unit="" min="0" max="" heading="Load"
 *               history="120" history-minutes="10">
 *   A line per field (a number in the message body; "a.b" for nested ones) over time,
 *   the newest `points` of each. On load it draws the newest `history` (default:
 *   points) messages the hub still keeps, no older than `history-minutes`, so a
 *   reload shows the recent past; history="0" starts empty. The value axis scales to the data (min/max pin it),
 *   the time axis runs from the oldest point kept to the newest. The legend shows each
 *   series' latest value. Drawn as SVG, at most once per animation frame.
 */
import {
  MokshaElement, arrival, clock, countAttribute, formatNumber, h, valueAt, wholeAttribute,
} from "./common.js";

const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 180; // when the stylesheet did not size the plot (it fills its card's height)
const MARGIN = { top: 10, right: 12, bottom: 22, left: 56 };
const TICKS = 4;
const SERIES_STYLES = 6; // moksha-series-0 … -5 in the stylesheet, then they repeat

export class MokshaChart extends MokshaElement {
  static observedAttributes = ["topic", "fields"];

  build() {
    const body = this.card("Chart");
    this.svg = svg("svg", { class: "moksha-chart-plot", role: "img" });
    this.legend = h("ul", { className: "moksha-legend" });
    body.append(this.svg, this.legend);
    this.pending = false;
    new ResizeObserver(() => this.redraw()).observe(this.svg);
  }

  start() {
    const fields = (this.getAttribute("fields") || "").split(",").map((f) => f.trim()).filter(Boolean);
    const labels = (this.getAttribute("labels") || "").split(",").map((l) => l.trim());
    if (!fields.length) return this.problem("set the fields attribute (e.g. fields=\"load1\")");
    this.series = fields.map((field, i) => ({ field, label: labels[i] || field, points: [] }));
    this.svg.setAttribute("aria-label", `${this.series.map((s) => s.label).join(", ")} over time`);
    this.drawLegend();
    this.meta.textContent = "waiting for data…";
    const count = wholeAttribute(this, "history", countAttribute(this, "points", 120));
    const minutes = parseFloat(this.getAttribute("history-minutes"));
    const seconds = minutes > 0 ? minutes * 60 : undefined;
    this.subscribeWithHistory(this.getAttribute("topic") || "#", { count, seconds },
      (message) => this.add(message));
  }

  add(message) {
    const body = message.body;
    const time = arrival(message);
    const keep = countAttribute(this, "points", 120);
    let added = false;
    for (const series of this.series) {
      const raw = valueAt(body, series.field);
      const value = Number(raw);
      // Messages without the field (or with a non-number) leave a series as it was.
      if (raw === null || raw === "" || typeof raw === "boolean" || !isFinite(value)) continue;
      series.points.push({ time, value });
      if (series.points.length > keep) series.points.splice(0, series.points.length - keep);
      added = true;
    }
    if (added) {
      this.touched(time);
      this.redraw();
    }
  }

  redraw() {
    if (this.pending || !this.series) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const width = this.svg.clientWidth || 300;
    const height = this.svg.clientHeight || HEIGHT;
    this.svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const all = this.series.flatMap((s) => s.points);
    this.svg.replaceChildren();
    this.updateLegend();
    if (!all.length) return;
    const unit = this.getAttribute("unit") || "";
    const y = valueScale(all.map((p) => p.value), this.number("min"), this.number("max"));
    const [t0, t1] = extent(all.map((p) => p.time));
    const plot = { x0: MARGIN.left, x1: width - MARGIN.right, y0: height - MARGIN.bottom, y1: MARGIN.top };
    const px = (time) => t1 === t0 ? plot.x1 : plot.x0 + (time - t0) / (t1 - t0) * (plot.x1 - plot.x0);
    const py = (value) => plot.y0 - (value - y.low) / (y.high - y.low) * (plot.y0 - plot.y1);

    for (const tick of y.ticks) {
      const at = py(tick);
      this.svg.append(svg("line", { class: "moksha-grid-line", x1: plot.x0, x2: plot.x1, y1: at, y2: at }));
      this.svg.append(svg("text", { class: "moksha-axis-label", x: plot.x0 - 6, y: at + 4, "text-anchor": "end" },
        formatNumber(tick, unit)));
    }
    this.svg.append(
      svg("text", { class: "moksha-axis-label", x: plot.x0, y: height - 6 }, clock(t0)),
      svg("text", { class: "moksha-axis-label", x: plot.x1, y: height - 6, "text-anchor": "end" }, clock(t1)));
    this.series.forEach((series, i) => {
      if (!series.points.length) return;
      const style = `moksha-series-${i % SERIES_STYLES}`;
      const coords = series.points.map((p) => `${px(p.time).toFixed(1)},${py(p.value).toFixed(1)}`);
      this.svg.append(svg("polyline", { class: `moksha-line ${style}`, points: coords.join(" "),
        "data-field": series.field }));
      const last = series.points[series.points.length - 1];
      this.svg.append(svg("circle", { class: `moksha-dot-end ${style}`, r: 3,
        cx: px(last.time).toFixed(1), cy: py(last.value).toFixed(1) }));
    });
    this.meta.textContent = `updated ${clock(t1)}`;
  }

  drawLegend() {
    this.legendValues = this.series.map((series, i) => {
      const value = h("span", { className: "moksha-legend-value", text: "–" });
      this.legend.append(h("li", { dataset: { field: series.field } },
        h("span", { className: `moksha-swatch moksha-series-${i % SERIES_STYLES}` }),
        h("span", { text: series.label }), value));
      return value;
    });
  }

  updateLegend() {
    const unit = this.getAttribute("unit") || "";
    this.series.forEach((series, i) => {
      const last = series.points[series.points.length - 1];
      this.legendValues[i].textContent = last ? formatNumber(last.value, unit) : "–";
    });
  }

  number(name) {
    const value = parseFloat(this.getAttribute(name));
    return isFinite(value) ? value : null;
  }

  stop() {
    this.legend.replaceChildren(); // start() draws it again, for the fields it then has
  }
}

/** The value axis: from the data, widened to round ticks, unless min/max pin an end. */
export function valueScale(values, min, max) {
  const [lowest, highest] = extent(values);
  let low = min ?? lowest;
  let high = max ?? highest;
  if (high <= low) {
    // A flat line: give it room around its value, keeping a pinned end where it is.
    const pad = Math.abs(high) * 0.1 || 1;
    if (min === null) low -= pad;
    if (max === null || high <= low) high = low + 2 * pad;
  }
  const step = niceStep((high - low) / TICKS);
  if (min === null) low = Math.floor(low / step) * step;
  if (max === null) high = Math.ceil(high / step) * step;
  const ticks = [];
  for (let tick = Math.ceil(low / step) * step, n = 0; tick <= high + step / 1e6 && n <= 2 * TICKS; tick += step, n++) {
    ticks.push(Number(tick.toPrecision(12)));
  }
  return { low, high, ticks };
}

/** [smallest, largest] of `values` (a loop: spreading thousands of points into Math.min overflows). */
function extent(values) {
  let low = Infinity, high = -Infinity;
  for (const value of values) {
    if (value < low) low = value;
    if (value > high) high = value;
  }
  return [low, high];
}

/** 1, 2 or 5 times a power of ten, near `rough`. */
function niceStep(rough) {
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const fraction = rough / magnitude;
  return (fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10) * magnitude;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}
