/*
 * What Moksha's web components share: a base element that owns its subscriptions,
 * the card every widget is drawn in, a small DOM builder and value formatting.
 *
 * Message content only ever reaches the page as text (textContent), never as HTML.
 */

/** The page's live-socket client (window.moksha, from /livesocket/moksha.js), or null. */
export function client() {
  return window.moksha || null;
}

/**
 * h("li", {className: "x", text: "hi", dataset: {a: "1"}, title: "t"}, child, ...)
 * Properties named className/text/dataset are special; the rest become attributes.
 */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "className") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

/** The value at a dotted path of a message body ("load1", "memory.used"), or undefined. */
export function valueAt(body, path) {
  let value = body;
  for (const key of path.split(".")) {
    if (value === null || typeof value !== "object") return undefined;
    value = value[key];
  }
  return value;
}

/** A body as one line of JSON, cut to at most `max` characters. */
export function compact(body, max = 240) {
  let text;
  try {
    text = typeof body === "string" ? body : JSON.stringify(body);
  } catch (err) {
    text = String(body);
  }
  if (text === undefined) text = String(body);
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

/** A body as indented JSON (strings as they are). */
export function pretty(body) {
  if (typeof body === "string") return body;
  try {
    return JSON.stringify(body, null, 2);
  } catch (err) {
    return String(body);
  }
}

/** When a message was stored (its history `time`), else now, in milliseconds. */
export function arrival(message) {
  return typeof message.time === "number" && message.time > 0 ? message.time * 1000 : Date.now();
}

/** "14:03:27" for a Date or a time in milliseconds. */
export function clock(time) {
  const date = time instanceof Date ? time : new Date(time);
  return date.toLocaleTimeString([], { hour12: false });
}

const SI = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];

/** A number as people read it: 0.42, 43.4%, 1.5 MB/s, 12.3k. */
export function formatNumber(value, unit = "") {
  if (typeof value !== "number" || !isFinite(value)) return "–";
  const size = Math.abs(value);
  // Byte units and big counts get a k/M/G prefix; small numbers keep a few decimals.
  const scaled = unit.startsWith("B") || size >= 1e4;
  if (scaled) {
    for (const [factor, prefix] of SI) {
      if (size >= factor) return `${trim(value / factor)} ${prefix}${unit}`.trim();
    }
  }
  const text = trim(value);
  if (!unit) return text;
  return unit === "%" || unit.startsWith("/") ? `${text}${unit}` : `${text} ${unit}`;
}

function trim(value) {
  const size = Math.abs(value);
  const digits = size >= 100 ? 0 : size >= 10 ? 1 : 2;
  return String(Number(value.toFixed(digits)));
}

/** An integer attribute of at least 0 (0 is a value), or `fallback`. */
export function wholeAttribute(element, name, fallback) {
  const value = parseInt(element.getAttribute(name), 10);
  return value >= 0 ? value : fallback;
}

/**
 * What arrives while nobody looks (paused, or a row open): the newest `limit` messages
 * kept, the older ones counted as dropped.
 */
export class Backlog {
  constructor(limit) {
    this.limit = limit;
    this.items = [];
    this.dropped = 0;
  }

  get size() {
    return this.items.length;
  }

  push(item) {
    this.items.push(item);
    if (this.items.length > this.limit) {
      this.items.shift();
      this.dropped += 1;
    }
  }

  /** Everything kept, oldest first, and the count dropped; the backlog is then empty. */
  drain() {
    const taken = { items: this.items, dropped: this.dropped };
    this.items = [];
    this.dropped = 0;
    return taken;
  }

  /** "30 new" or "1,000 new, 234 dropped". */
  describe() {
    const count = this.size.toLocaleString("en");
    return this.dropped ? `${count} new, ${this.dropped.toLocaleString("en")} dropped` : `${count} new`;
  }
}

/**
 * A region that tells screen readers what changed in a few words ("12 new messages"),
 * at most once per `everyMs`, instead of reading out every message.
 */
export class Announcer {
  constructor(everyMs = 2000) {
    this.node = h("p", { className: "moksha-visually-hidden", role: "status" });
    this.everyMs = everyMs;
    this.count = 0;
    this.timer = null;
  }

  /** Count `n` new messages; the region says how many once the quiet period ends. */
  add(n = 1) {
    this.count += n;
    if (this.timer === null) this.timer = setTimeout(() => this.flush(), this.everyMs);
  }

  flush() {
    this.timer = null;
    if (!this.count) return;
    this.node.textContent = `${this.count} new message${this.count === 1 ? "" : "s"}`;
    this.count = 0;
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
    this.count = 0;
  }
}

/** An integer attribute of at least 1, or `fallback`. */
export function countAttribute(element, name, fallback) {
  const value = parseInt(element.getAttribute(name), 10);
  return value >= 1 ? value : fallback;
}

/**
 * The base of the components: builds its content once, subscribes while in the page.
 * Subclasses define build() (the DOM, once), start() (subscribe, timers) and may
 * define stop() for what subscribe() does not already undo.
 */
// A connection down this long greys the cards (a reconnect that works at once is no news).
const STALE_AFTER_MS = 2000;
// Live messages held while a widget's history loads, at most.
const MAX_HELD = 10000;

export class MokshaElement extends HTMLElement {
  connectedCallback() {
    if (!this._built) {
      this._built = true;
      this._subscriptions = [];
      this._generation = 0;
      this.lastUpdate = null;
      this.build();
    }
    this.start();
  }

  disconnectedCallback() {
    this.stop();
    this.unsubscribeAll();
  }

  attributeChangedCallback(name, before, after) {
    // A changed topic means new subscriptions; before the first connect, nothing to redo.
    if (this._built && this.isConnected && before !== after) {
      this.disconnectedCallback();
      this.start();
    }
  }

  build() {}
  start() {}
  stop() {}

  /** Follow `pattern`: `callback({topic, body, id})` per message, until disconnected. */
  subscribe(pattern, callback) {
    const moksha = client();
    if (!moksha) {
      this.problem("This page lacks the live-socket client: add " +
        '<script src="/livesocket/moksha.js"></script> before the widgets.');
      return;
    }
    this._subscriptions.push(moksha.subscribe(pattern, callback));
    this.followConnection(moksha);
  }

  /**
   * As subscribe(), after the newest `count` stored messages (none older than
   * `seconds`) from the hub's history, each once: live messages that arrive while
   * the history loads wait, and those the history also holds are not repeated.
   * Replayed messages carry `time` (seconds) and `replayed: true`.
   */
  subscribeWithHistory(pattern, { count, seconds }, callback) {
    const moksha = client();
    if (!moksha || !count || typeof moksha.history !== "function") {
      return this.subscribe(pattern, callback);
    }
    let held = [];
    this.subscribe(pattern, (message) => {
      if (held === null) return callback(message);
      held.push(message);
      if (held.length > MAX_HELD) held.shift();
    });
    const generation = this._generation;
    moksha.history(pattern, { count, seconds })
      .then((events) => {
        if (generation !== this._generation) return; // resubscribed meanwhile
        const live = new Set(held.map((message) => message.id));
        for (const event of events) {
          if (!live.has(event.id)) callback({ ...event, replayed: true });
        }
      })
      .catch((err) => console.warn(`moksha: <${this.localName}>: no history for ${pattern}: ${err.message}`))
      .finally(() => {
        if (generation !== this._generation) return;
        const waiting = held;
        held = null;
        waiting.forEach(callback);
      });
  }

  unsubscribeAll() {
    for (const unsubscribe of this._subscriptions || []) unsubscribe();
    this._subscriptions = [];
    this._generation += 1;
    if (this._onState && client()) client().off("state", this._onState);
    this._onState = null;
    clearTimeout(this._staleTimer);
    this._staleTimer = null;
  }

  /** Grey the card and say so when the page's connection stays down (see setStale). */
  followConnection(moksha) {
    if (this._onState) return;
    this._onState = (state) => {
      if (state === "open") {
        clearTimeout(this._staleTimer);
        this._staleTimer = null;
        this.setStale(null);
      } else if (this._staleTimer === null && !this.dataset.stale) {
        // Not restarted by each state change: a reconnect loop flips state every second.
        this._staleTimer = setTimeout(() => {
          this._staleTimer = null;
          if (moksha.state !== "open") this.setStale("offline");
        }, STALE_AFTER_MS);
      }
    };
    this._staleTimer = null;
    moksha.on("state", this._onState);
    this._onState(moksha.state);
  }

  /** New data is on show: note the time (the stale note says it). */
  touched(time = Date.now()) {
    if (this.lastUpdate === null || time > this.lastUpdate) this.lastUpdate = time;
  }

  /**
   * `reason` ("offline", "unreachable") greys the card's data and says since when it
   * is unchanged; null shows it live again.
   */
  setStale(reason) {
    if (!this.staleNote) return;
    if (!reason) {
      delete this.dataset.stale;
      this.staleNote.hidden = true;
      this.staleNote.textContent = "";
      return;
    }
    this.dataset.stale = reason;
    const since = this.lastUpdate === null ? "no data yet" : `last update ${clock(this.lastUpdate)}`;
    this.staleNote.textContent = `${reason} · ${since}`;
    this.staleNote.hidden = false;
  }

  /** Draw the card: a header with the heading and a meta line, and a body. */
  card(fallbackHeading) {
    this.classList.add("moksha-card");
    this.meta = h("span", { className: "moksha-meta" });
    this.staleNote = h("span", { className: "moksha-stale-note", role: "status", hidden: true });
    this.tools = h("span", { className: "moksha-card-tools" }, this.staleNote, this.meta);
    this.header = h("header", { className: "moksha-card-header" },
      h("h2", { text: this.getAttribute("heading") || fallbackHeading }), this.tools);
    this.body = h("div", { className: "moksha-card-body" });
    this.replaceChildren(this.header, this.body);
    return this.body;
  }

  /** Say in the card (and the console) what keeps the widget from working. */
  problem(text) {
    console.error(`moksha: <${this.localName}>: ${text}`);
    this.clearProblem();
    this._problem = h("p", { className: "moksha-problem", role: "alert", text });
    (this.body || this).prepend(this._problem);
  }

  clearProblem() {
    if (this._problem) this._problem.remove();
    this._problem = null;
  }
}
