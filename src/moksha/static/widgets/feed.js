/*
 * <moksha-feed topic="org.example.#" limit="20" history="20" history-minutes="60" heading="News">
 *   The messages on topic, newest first, at most `limit` of them. On load it shows the
 *   newest `history` (default: limit) the hub still keeps, no older than
 *   `history-minutes`; history="0" starts empty. A body with title / link / summary
 *   fields (a feed entry) shows as a link and a summary; any other body as JSON, which
 *   opens in full when it is long. "Pause" keeps what arrives (the newest `backlog`,
 *   1000, counting any dropped) until "Resume". Screen readers hear "3 new messages" now and then, not every message.
 */
import {
  Announcer, Backlog, MokshaElement, arrival, clock, compact, countAttribute, h, pretty, wholeAttribute,
} from "./common.js";

const SUMMARY_CHARS = 280;
const PREVIEW_CHARS = 120; // a longer body gets a disclosure with all of it
const BACKLOG = 1000;

export class MokshaFeed extends MokshaElement {
  static observedAttributes = ["topic"];

  build() {
    const body = this.card("Messages");
    this.pauseButton = h("button", { type: "button", className: "moksha-pause moksha-small-button",
      "aria-pressed": "false", text: "Pause" });
    this.tools.append(this.pauseButton);
    this.list = h("ol", { className: "moksha-list moksha-feed-list", tabindex: "0",
      "aria-label": this.getAttribute("heading") || "Messages" });
    this.empty = h("p", { className: "moksha-empty" });
    this.announcer = new Announcer();
    body.append(this.empty, this.list, this.announcer.node);
    this.pauseButton.addEventListener("click", () => this.setPaused(!this.paused));
    this.received = 0;
    this.paused = false;
    this.backlog = new Backlog(countAttribute(this, "backlog", BACKLOG));
  }

  start() {
    const topic = this.getAttribute("topic") || "#";
    this.empty.textContent = `Waiting for messages on ${topic}…`;
    const count = wholeAttribute(this, "history", this.limit);
    const minutes = parseFloat(this.getAttribute("history-minutes"));
    const seconds = minutes > 0 ? minutes * 60 : undefined;
    this.subscribeWithHistory(topic, { count, seconds }, (message) => this.add(message));
  }

  stop() {
    this.announcer.stop();
  }

  get limit() {
    return countAttribute(this, "limit", 20);
  }

  add(message) {
    this.received += 1;
    this.touched(arrival(message));
    if (this.paused) {
      this.backlog.push(message);
      this.pauseButton.textContent = `Resume (${this.backlog.describe()})`;
    } else {
      this.show([message]);
      if (!message.replayed) this.announcer.add();
    }
    this.meta.textContent = `${this.received} received`;
  }

  show(messages) {
    if (!messages.length) return;
    this.empty.hidden = true;
    const items = messages.map(entry).reverse(); // newest first
    this.list.prepend(...items.slice(0, this.limit));
    while (this.list.childElementCount > this.limit) this.list.lastElementChild.remove();
  }

  setPaused(paused) {
    this.paused = paused;
    this.pauseButton.setAttribute("aria-pressed", String(paused));
    this.pauseButton.textContent = paused ? "Resume" : "Pause";
    this.classList.toggle("moksha-paused", paused);
    if (!paused) {
      const { items, dropped } = this.backlog.drain();
      this.show(items);
      this.announcer.add(items.length);
      if (dropped) this.meta.textContent = `${this.received} received, ${dropped} dropped while paused`;
    }
  }
}

function entry(message) {
  const body = message.body;
  const item = h("li", { className: "moksha-feed-entry", dataset: { topic: message.topic } });
  const line = h("div", { className: "moksha-entry-meta" },
    h("span", { className: "moksha-topic", text: message.topic }),
    h("time", { text: clock(arrival(message)) }));
  if (message.summary) {
    // The message's schema says what it means: that line first, the body on demand.
    item.append(h("p", { className: "moksha-summary", text: message.summary }), jsonBody(body), line);
  } else if (body && typeof body === "object" && (body.title || body.summary)) {
    item.append(feedEntry(body), line);
  } else {
    item.append(jsonBody(body), line);
  }
  return item;
}

/** A short body as one line; a long one as a disclosure whose summary is its start. */
function jsonBody(body) {
  const preview = compact(body, PREVIEW_CHARS);
  const whole = compact(body, Infinity);
  if (whole.length <= PREVIEW_CHARS) return h("code", { className: "moksha-json", text: preview });
  return h("details", { className: "moksha-body" },
    h("summary", {}, h("code", { className: "moksha-json", text: preview })),
    h("pre", { className: "moksha-pretty", text: pretty(body) }));
}

function feedEntry(body) {
  const title = String(body.title || body.link || "(untitled)");
  const href = safeLink(body.link);
  const heading = href
    ? h("a", { href, text: title, target: "_blank", rel: "noopener noreferrer" })
    : h("span", { text: title });
  const parts = [h("strong", { className: "moksha-entry-title" }, heading)];
  if (body.summary) {
    const text = plainText(body.summary);
    if (text.length > SUMMARY_CHARS) {
      parts.push(h("details", { className: "moksha-body" },
        h("summary", { className: "moksha-entry-summary", text: text.slice(0, SUMMARY_CHARS - 1) + "…" }),
        h("p", { className: "moksha-entry-summary", text })));
    } else {
      parts.push(h("p", { className: "moksha-entry-summary", text }));
    }
  }
  return h("div", {}, ...parts);
}

/** Only web links: a message must not be able to plant a javascript: URL. */
function safeLink(link) {
  if (typeof link !== "string") return null;
  try {
    const url = new URL(link, location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch (err) {
    return null;
  }
}

/** Feed summaries are often HTML: keep their text (DOMParser runs no script). */
function plainText(summary) {
  const text = new DOMParser().parseFromString(String(summary), "text/html").body.textContent;
  return text.replace(/\s+/g, " ").trim();
}
