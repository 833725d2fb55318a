/*
 * <moksha-feed topic="org.example.#" limit="20" heading="News">
 *   The messages on topic, newest first, at most `limit` of them. A body with title /
 *   link / summary fields (a feed entry) shows as a link and a summary; any other body
 *   as one line of JSON.
 */
import { MokshaElement, clock, compact, countAttribute, h } from "./common.js";

const SUMMARY_CHARS = 280;

export class MokshaFeed extends MokshaElement {
  static observedAttributes = ["topic"];

  build() {
    const body = this.card("Messages");
    this.list = h("ol", { className: "moksha-list moksha-feed-list", "aria-live": "polite" });
    this.empty = h("p", { className: "moksha-empty" });
    body.append(this.empty, this.list);
    this.received = 0;
  }

  start() {
    const topic = this.getAttribute("topic") || "#";
    this.empty.textContent = `Waiting for messages on ${topic}…`;
    this.subscribe(topic, (message) => this.add(message));
  }

  get limit() {
    return countAttribute(this, "limit", 20);
  }

  add(message) {
    this.received += 1;
    this.empty.hidden = true;
    this.list.prepend(entry(message));
    while (this.list.childElementCount > this.limit) this.list.lastElementChild.remove();
    this.meta.textContent = `${this.received} received`;
  }
}

function entry(message) {
  const body = message.body;
  const item = h("li", { className: "moksha-feed-entry", dataset: { topic: message.topic } });
  const line = h("div", { className: "moksha-entry-meta" },
    h("span", { className: "moksha-topic", text: message.topic }),
    h("time", { text: clock(Date.now()) }));
  if (body && typeof body === "object" && (body.title || body.summary)) {
    item.append(feedEntry(body), line);
  } else {
    item.append(h("code", { className: "moksha-json", text: compact(body) }), line);
  }
  return item;
}

function feedEntry(body) {
  const title = String(body.title || body.link || "(untitled)");
  const href = safeLink(body.link);
  const heading = href
    ? h("a", { href, text: title, target: "_blank", rel: "noopener noreferrer" })
    : h("span", { text: title });
  const parts = [h("strong", { className: "moksha-entry-title" }, heading)];
  if (body.summary) {
    parts.push(h("p", { className: "moksha-entry-summary", text: plainText(body.summary) }));
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
  const clean = text.replace(/\s+/g, " ").trim();
  return clean.length > SUMMARY_CHARS ? clean.slice(0, SUMMARY_CHARS - 1) + "…" : clean;
}
