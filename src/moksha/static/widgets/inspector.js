/*
 * <moksha-inspector pattern="#" limit="200" heading="Topic inspector">
 *   Tail any pattern in the browser. Type a pattern and press Enter (or "Tail") to
 *   follow it instead; "Pause" stops showing messages (they are counted) until
 *   "Resume"; the filter box hides messages whose topic and JSON lack its text. Each
 *   message shows its topic, time and a one-line preview; open it for pretty JSON.
 *   The header counts messages per second (over the last five seconds).
 */
import { MokshaElement, client, clock, compact, countAttribute, h, pretty } from "./common.js";

const RATE_WINDOW_MS = 5000;
const MAX_ARRIVALS = 10000; // bounds the rate's memory even at thousands of messages/s

export class MokshaInspector extends MokshaElement {
  static observedAttributes = ["pattern"];

  build() {
    const body = this.card("Topic inspector");
    this.patternInput = h("input", { name: "pattern", type: "text", spellcheck: "false",
      "aria-label": "Topic pattern", placeholder: "pattern: a.b.*, a.#" });
    this.pauseButton = h("button", { type: "button", className: "moksha-pause",
      "aria-pressed": "false", text: "Pause" });
    this.filterInput = h("input", { name: "filter", type: "search", placeholder: "Filter",
      "aria-label": "Filter messages" });
    const form = h("form", { className: "moksha-controls" },
      this.patternInput, h("button", { type: "submit", text: "Tail" }),
      this.pauseButton, this.filterInput);
    this.list = h("ol", { className: "moksha-list moksha-inspector-list" });
    this.empty = h("p", { className: "moksha-empty" });
    body.append(form, this.empty, this.list);

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const pattern = this.patternInput.value.trim();
      if (pattern) this.setAttribute("pattern", pattern); // resubscribes
    });
    this.pauseButton.addEventListener("click", () => this.setPaused(!this.paused));
    this.filterInput.addEventListener("input", () => this.applyFilter());
    this.paused = false;
    this.skipped = 0;
    this.arrivals = [];
  }

  start() {
    const pattern = this.getAttribute("pattern") || "#";
    this.patternInput.value = pattern;
    this.list.replaceChildren();
    this.empty.hidden = false;
    this.empty.textContent = `Tailing ${pattern}: waiting for messages…`;
    this.arrivals = [];
    this.started = performance.now();
    this.subscribe(pattern, (message) => this.receive(message));
    this.watchRefusals(pattern);
    this.timer = setInterval(() => this.showRate(), 1000);
    this.showRate();
  }

  stop() {
    clearInterval(this.timer);
    if (this.onRefusal && client()) client().off("error", this.onRefusal);
    this.clearProblem();
  }

  /** Show why the hub refused the pattern (bad syntax, a protected topic, a limit). */
  watchRefusals(pattern) {
    const moksha = client();
    if (!moksha) return;
    const quoted = JSON.stringify(pattern);
    this.onRefusal = (refusal) => {
      if (typeof refusal.frame === "string" && refusal.frame.includes(quoted)) {
        this.problem(`the hub refused ${pattern}: ${refusal.error}`);
      }
    };
    moksha.on("error", this.onRefusal);
  }

  get limit() {
    return countAttribute(this, "limit", 200);
  }

  receive(message) {
    const now = performance.now();
    this.arrivals.push(now);
    if (this.arrivals.length > MAX_ARRIVALS) this.arrivals.splice(0, this.arrivals.length - MAX_ARRIVALS);
    if (this.paused) {
      this.skipped += 1;
      this.pauseButton.textContent = `Resume (${this.skipped} new)`;
      return;
    }
    this.empty.hidden = true;
    const item = entry(message);
    item.hidden = !this.matchesFilter(item);
    this.list.prepend(item);
    while (this.list.childElementCount > this.limit) this.list.lastElementChild.remove();
  }

  setPaused(paused) {
    this.paused = paused;
    this.skipped = 0;
    this.pauseButton.setAttribute("aria-pressed", String(paused));
    this.pauseButton.textContent = paused ? "Resume" : "Pause";
    this.classList.toggle("moksha-paused", paused);
  }

  matchesFilter(item) {
    const text = this.filterInput.value.trim().toLowerCase();
    return !text || item.dataset.text.includes(text);
  }

  applyFilter() {
    for (const item of this.list.children) item.hidden = !this.matchesFilter(item);
  }

  showRate() {
    const now = performance.now();
    const cut = this.arrivals.findIndex((time) => time > now - RATE_WINDOW_MS);
    this.arrivals.splice(0, cut < 0 ? this.arrivals.length : cut);
    const span = Math.min(RATE_WINDOW_MS, Math.max(1000, now - this.started));
    const rate = this.arrivals.length / (span / 1000);
    this.meta.textContent = `${rate.toFixed(1)} msg/s${this.paused ? " · paused" : ""}`;
  }
}

function entry(message) {
  const preview = compact(message.body, 160);
  const details = h("details", {},
    h("summary", {},
      h("span", { className: "moksha-topic", text: message.topic }),
      h("time", { text: clock(Date.now()) }),
      h("code", { className: "moksha-json", text: preview })),
    h("pre", { className: "moksha-pretty", text: pretty(message.body) }));
  const text = `${message.topic} ${compact(message.body, Infinity)}`.toLowerCase();
  return h("li", { className: "moksha-inspector-entry", dataset: { topic: message.topic, text } },
    details);
}
