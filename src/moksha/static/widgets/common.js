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
export class MokshaElement extends HTMLElement {
  connectedCallback() {
    if (!this._built) {
      this._built = true;
      this._subscriptions = [];
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
  }

  unsubscribeAll() {
    for (const unsubscribe of this._subscriptions || []) unsubscribe();
    this._subscriptions = [];
  }

  /** Draw the card: a header with the heading and a meta line, and a body. */
  card(fallbackHeading) {
    this.classList.add("moksha-card");
    this.meta = h("span", { className: "moksha-meta" });
    this.header = h("header", { className: "moksha-card-header" },
      h("h2", { text: this.getAttribute("heading") || fallbackHeading }), this.meta);
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
