/*
 * <moksha-inspector pattern="#" limit="200" backlog="1000" heading="Topic inspector">
 *   Tail any pattern in the browser. Type a pattern and press Enter (or "Tail") to
 *   follow it instead; "Pause" keeps what arrives (the newest `backlog`, 1000, counting any
 *   dropped) and "Resume" shows it; the filter box hides messages whose topic and JSON
 *   lack its text. Each message shows its topic, time and a one-line preview; open it
 *   for pretty JSON. While a message is open, new ones wait above the list ("12 new
 *   messages: show"), so what you read stays put. The header counts messages per
 *   second (over the last five seconds); screen readers hear a count now and then.
 */
import {
  Announcer, Backlog, MokshaElement, arrival, client, clock, compact, countAttribute, h, pretty,
} from "./common.js";

const RATE_WINDOW_MS = 5000;
const MAX_ARRIVALS = 10000; // bounds the rate's memory even at thousands of messages/s
const BACKLOG = 1000; // messages kept while paused or while a message is open

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
    // Floats over the list's top edge: showing it moves nothing of what is read.
    this.waitingButton = h("button", { type: "button", className: "moksha-waiting", hidden: true });
    const form = h("form", { className: "moksha-controls" },
      this.patternInput, h("button", { type: "submit", text: "Tail" }),
      this.pauseButton, this.filterInput);
    this.list = h("ol", { className: "moksha-list moksha-inspector-list", tabindex: "0",
      "aria-label": "Messages" });
    this.empty = h("p", { className: "moksha-empty" });
    this.announcer = new Announcer();
    const frame = h("div", { className: "moksha-list-frame" }, this.waitingButton, this.list);
    body.append(form, this.empty, frame, this.announcer.node);
    this.waitingButton.addEventListener("click", () => this.showWaiting(true));
    // An opened or closed message: hold new ones while any is open, show them after.
    this.list.addEventListener("toggle", () => this.showWaiting(false), true);

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const pattern = this.patternInput.value.trim();
      if (pattern) this.setAttribute("pattern", pattern); // resubscribes
    });
    this.pauseButton.addEventListener("click", () => this.setPaused(!this.paused));
    this.filterInput.addEventListener("input", () => this.applyFilter());
    this.paused = false;
    this.backlog = new Backlog(countAttribute(this, "backlog", BACKLOG));
    this.arrivals = [];
  }

  start() {
    const pattern = this.getAttribute("pattern") || "#";
    this.patternInput.value = pattern;
    this.list.replaceChildren();
    this.backlog.drain();
    delete this.meta.dataset.dropped;
    this.showCount();
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
    this.announcer.stop();
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
    this.touched(arrival(message));
    this.announcer.add();
    if (this.holding) {
      this.backlog.push({ ...message, time: arrival(message) / 1000 });
      this.showCount();
      return;
    }
    this.show([message]);
  }

  /** Held back: paused, or a message is open (new rows must not move what is read). */
  get holding() {
    return this.paused || this.list.querySelector("details[open]") !== null;
  }

  show(messages) {
    if (!messages.length) return;
    this.empty.hidden = true;
    const items = messages.slice(-this.limit).map((message) => {
      const item = entry(message);
      item.hidden = !this.matchesFilter(item);
      return item;
    });
    this.list.prepend(...items.reverse()); // newest first
    while (this.list.childElementCount > this.limit) this.list.lastElementChild.remove();
  }

  /** Show what waits, unless something still holds it (`force`: the user asked). */
  showWaiting(force) {
    if (!force && this.holding) return this.showCount();
    if (this.paused) this.setPaused(false);
    const { items, dropped } = this.backlog.drain();
    this.show(items);
    if (dropped) this.meta.dataset.dropped = String(dropped);
    this.showCount();
  }

  /** The pause button and the "n new messages" bar say how many wait. */
  showCount() {
    const waiting = this.backlog.size;
    this.pauseButton.textContent = this.paused
      ? (waiting || this.backlog.dropped ? `Resume (${this.backlog.describe()})` : "Resume")
      : "Pause";
    const shown = !this.paused && waiting > 0;
    this.waitingButton.hidden = !shown;
    if (shown) {
      this.waitingButton.textContent =
        `${this.backlog.describe().replace(" new", ` new message${waiting === 1 ? "" : "s"}`)}: show`;
    }
  }

  setPaused(paused) {
    this.paused = paused;
    this.pauseButton.setAttribute("aria-pressed", String(paused));
    this.classList.toggle("moksha-paused", paused);
    if (!paused) {
      // Resume shows what came while paused, unless a message is open: then it waits on.
      if (!this.holding) {
        const { items, dropped } = this.backlog.drain();
        this.show(items);
        if (dropped) this.meta.dataset.dropped = String(dropped);
      }
    }
    this.showCount();
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
    const dropped = this.meta.dataset.dropped ? ` · ${this.meta.dataset.dropped} dropped` : "";
    this.meta.textContent = `${rate.toFixed(1)} msg/s${this.paused ? " · paused" : ""}${dropped}`;
  }
}

function entry(message) {
  const preview = compact(message.body, 160);
  const details = h("details", {},
    h("summary", {},
      h("span", { className: "moksha-topic", text: message.topic }),
      h("time", { text: clock(arrival(message)) }),
      message.summary
        ? h("span", { className: "moksha-summary", text: message.summary })
        : h("code", { className: "moksha-json", text: preview })),
    h("pre", { className: "moksha-pretty", text: pretty(message.body) }));
  const text = `${message.topic} ${message.summary || ""} ${compact(message.body, Infinity)}`
    .toLowerCase();
  return h("li", { className: "moksha-inspector-entry", dataset: { topic: message.topic, text } },
    details);
}
