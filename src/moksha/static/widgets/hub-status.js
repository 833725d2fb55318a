/*
 * <moksha-hub-status src="/_moksha/hub/status" interval="2" heading="Hub">
 *   What the hub is doing, refreshed every `interval` seconds from the status JSON
 *   (moksha.widgets.status): consumers with their headcounts, rate, backlog, broker queue depth and
 *   exceptions; producers; backends and whether they are connected; live-socket clients.
 */
import { MokshaElement, clock, formatNumber, h } from "./common.js";

export class MokshaHubStatus extends MokshaElement {
  build() {
    this.card("Hub");
    this.previous = null; // the last status, for rates
  }

  start() {
    this.running = true;
    this.poll();
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    if (this.request) this.request.abort();
  }

  get interval() {
    const seconds = parseFloat(this.getAttribute("interval"));
    return (seconds > 0 ? seconds : 2) * 1000;
  }

  async poll() {
    this.request = new AbortController();
    try {
      const response = await fetch(this.getAttribute("src") || "/_moksha/hub/status",
        { cache: "no-store", signal: this.request.signal });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const status = await response.json();
      this.show(status);
      this.dataset.state = "ok";
    } catch (err) {
      if (!this.running) return;
      this.dataset.state = "unreachable";
      this.meta.textContent = `unreachable (${err.message}), retrying`;
    }
    // Chained rather than setInterval: a slow hub never gets requests piled up.
    if (this.running) this.timer = setTimeout(() => this.poll(), this.interval);
  }

  show(status) {
    const before = this.previous;
    const seconds = before ? status.hub.time - before.hub.time : 0;
    const earlier = new Map((before ? before.consumers : []).map((c) => [key(c), c]));
    this.previous = status;
    const live = status.livesocket;
    this.meta.textContent = `${status.hub.state} · ${clock(status.hub.time * 1000)}`;
    this.body.replaceChildren(
      section("Consumers", status.consumers.length
        ? table(["Consumer", "In", "Out", "Rate", "Backlog", "Queued", "Errors"],
          status.consumers.map((c) => consumerRow(c, earlier.get(key(c)), seconds)))
        : h("p", { className: "moksha-empty", text: "No consumers." })),
      section("Producers", status.producers.length
        ? table(["Producer", "Every", "Last ran", "Errors"], status.producers.map(producerRow))
        : h("p", { className: "moksha-empty", text: "No producers." })),
      section("Backends", h("ul", { className: "moksha-backends" }, ...status.backends.map(backend))),
      section("Live socket", h("p", {
        className: "moksha-livesocket",
        text: live
          ? `${live.clients} client${live.clients === 1 ? "" : "s"} (${live.websocket} WebSocket, ` +
            `${live.sse} SSE), ${live.subscriptions} subscription${live.subscriptions === 1 ? "" : "s"}`
          : "not served by this hub",
      })));
  }
}

function key(consumer) {
  return `${consumer.module}.${consumer.name}`;
}

function consumerRow(consumer, earlier, seconds) {
  const rate = earlier && seconds > 0
    ? formatNumber(Math.max(0, consumer.headcount_in - earlier.headcount_in) / seconds, "/s")
    : "–";
  return h("tr", { dataset: { name: consumer.name }, className: consumer.exceptions ? "moksha-failing" : null },
    h("th", { scope: "row", title: `${consumer.module} · ${consumer.topic.join(", ")}` },
      consumer.name, h("small", { text: consumer.topic.join(", ") })),
    cell(formatNumber(consumer.headcount_in)), cell(formatNumber(consumer.headcount_out)),
    cell(rate), cell(formatNumber(consumer.backlog)),
    cell(consumer.queue_depth == null ? "–" : formatNumber(consumer.queue_depth)),
    cell(formatNumber(consumer.exceptions)));
}

function producerRow(producer) {
  const every = typeof producer.frequency === "number" ? `${formatNumber(producer.frequency)} s` : "–";
  const ran = producer.last_ran ? clock(producer.last_ran * 1000) : "–";
  return h("tr", { dataset: { name: producer.name }, className: producer.exceptions ? "moksha-failing" : null },
    h("th", { scope: "row", title: producer.module, text: producer.name }),
    cell(every), cell(ran), cell(formatNumber(producer.exceptions)));
}

function backend(item) {
  const state = item.connected ? "connected" : "disconnected";
  return h("li", { dataset: { state, name: item.name } },
    h("span", { className: "moksha-dot" }), `${item.name}: ${state}`);
}

function cell(text) {
  return h("td", { text });
}

function section(title, content) {
  return h("section", { className: "moksha-status-section" }, h("h3", { text: title }), content);
}

function table(headings, rows) {
  return h("div", { className: "moksha-table-scroll" },
    h("table", { className: "moksha-table" },
      h("thead", {}, h("tr", {}, ...headings.map((text) => h("th", { scope: "col", text })))),
      h("tbody", {}, ...rows)));
}
