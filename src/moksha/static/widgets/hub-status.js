/*
 * <moksha-hub-status src="/_moksha/hub/status" interval="2" heading="Hub">
 *   What the hub is doing, refreshed every `interval` seconds from the status JSON
 *   (moksha.widgets.status): consumers with their headcounts, rate, backlog, broker queue depth and
 *   exceptions; producers; backends and whether they are connected; live-socket clients.
 *
 *   Its state is its poll's: the header says when the last answer came; when the hub
 *   stops answering, the card greys what it shows and says "unreachable · last update
 *   hh:mm:ss" (this widget needs no live socket, so the socket's state says nothing of it).
 *   The tables are updated cell by cell: scroll position, focus and selection stay.
 */
import { MokshaElement, clock, formatNumber, h } from "./common.js";

const CONSUMER_COLUMNS = ["Consumer", "In", "Out", "Rate", "Backlog", "Queued", "Errors"];
const PRODUCER_COLUMNS = ["Producer", "Every", "Last ran", "Errors"];

export class MokshaHubStatus extends MokshaElement {
  build() {
    const body = this.card("Hub");
    this.previous = null; // the last status, for rates
    this.consumers = new StatusTable(CONSUMER_COLUMNS, "No consumers.");
    this.producers = new StatusTable(PRODUCER_COLUMNS, "No producers.");
    this.backends = h("ul", { className: "moksha-backends" });
    this.livesocket = h("p", { className: "moksha-livesocket" });
    this.cluster = h("ul", { className: "moksha-cluster" });
    this.clusterSection = section("Cluster", this.cluster);
    this.clusterSection.hidden = true; // only a node of a cluster has one
    body.append(
      section("Consumers", this.consumers.node),
      section("Producers", this.producers.node),
      section("Backends", this.backends),
      section("Live socket", this.livesocket),
      this.clusterSection);
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
    const request = this.request = new AbortController();
    // A hub that stopped answering (not refusing) must not leave the card looking live.
    const deadline = setTimeout(() => request.abort(), Math.max(2 * this.interval, 3000));
    try {
      const response = await fetch(this.getAttribute("src") || "/_moksha/hub/status",
        { cache: "no-store", signal: request.signal });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const status = await response.json();
      this.show(status);
      this.dataset.state = "ok";
      this.touched();
      this.setStale(null);
      this.meta.textContent = `${status.hub.state} · updated ${clock(this.lastUpdate)}`;
    } catch (err) {
      if (!this.running) return;
      this.dataset.state = "unreachable";
      this.setStale("unreachable");
      this.meta.textContent = err.name === "AbortError" ? "no answer, retrying" : `${err.message}, retrying`;
    } finally {
      clearTimeout(deadline);
    }
    // Chained rather than setInterval: a slow hub never gets requests piled up.
    if (this.running) this.timer = setTimeout(() => this.poll(), this.interval);
  }

  show(status) {
    const before = this.previous;
    const seconds = before ? status.hub.time - before.hub.time : 0;
    const earlier = new Map((before ? before.consumers : []).map((c) => [key(c), c]));
    this.previous = status;
    this.consumers.update(status.consumers.map((c) => consumerRow(c, earlier.get(key(c)), seconds)));
    this.producers.update(status.producers.map(producerRow));
    updateList(this.backends, status.backends.map(backendItem));
    const live = status.livesocket;
    setText(this.livesocket, live
      ? `${live.clients} client${live.clients === 1 ? "" : "s"} (${live.websocket} WebSocket, ` +
        `${live.sse} SSE), ${live.subscriptions} subscription${live.subscriptions === 1 ? "" : "s"}`
      : "not served by this hub");
    const cluster = status.cluster;
    this.clusterSection.hidden = !cluster;
    if (cluster) updateList(this.cluster, clusterItems(cluster, live));
  }
}

/**
 * A table whose rows are keyed by name and whose cells change only when their text
 * does: an update never rebuilds it, so its scroll, focus and selection stay.
 */
class StatusTable {
  constructor(headings, emptyText) {
    this.body = h("tbody");
    this.table = h("div", { className: "moksha-table-scroll", tabindex: "0", role: "region",
      "aria-label": `${headings[0]}s` },
    h("table", { className: "moksha-table" },
      h("thead", {}, h("tr", {}, ...headings.map((text) => h("th", { scope: "col", text })))),
      this.body));
    this.empty = h("p", { className: "moksha-empty", text: emptyText, hidden: true });
    this.table.hidden = true; // until the first answer
    this.node = h("div", {}, this.empty, this.table);
    this.rows = new Map();
  }

  /** rows: [{key, name, title, topic, cells: [text...], failing}] in the order to show. */
  update(rows) {
    this.empty.hidden = rows.length > 0;
    this.table.hidden = rows.length === 0;
    const wanted = new Set(rows.map((row) => row.key));
    for (const [rowKey, tr] of this.rows) {
      if (!wanted.has(rowKey)) {
        tr.remove();
        this.rows.delete(rowKey);
      }
    }
    rows.forEach((row, index) => {
      let tr = this.rows.get(row.key);
      if (!tr) {
        tr = h("tr", { dataset: { name: row.name } },
          h("th", { scope: "row" }, row.name, row.topic === undefined ? null : h("small")),
          ...row.cells.map(() => h("td")));
        this.rows.set(row.key, tr);
      }
      if (this.body.children[index] !== tr) this.body.insertBefore(tr, this.body.children[index] || null);
      tr.classList.toggle("moksha-failing", row.failing);
      const th = tr.firstElementChild;
      if (th.title !== row.title) th.title = row.title;
      if (row.topic !== undefined) setText(th.querySelector("small"), row.topic);
      row.cells.forEach((text, i) => setText(tr.children[i + 1], text));
    });
  }
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function key(consumer) {
  return `${consumer.module}.${consumer.name}`;
}

function consumerRow(consumer, earlier, seconds) {
  const rate = earlier && seconds > 0
    ? formatNumber(Math.max(0, consumer.headcount_in - earlier.headcount_in) / seconds, "/s")
    : "–";
  return {
    key: key(consumer),
    name: consumer.name,
    title: `${consumer.module} · ${consumer.topic.join(", ")}`,
    topic: consumer.topic.join(", "),
    failing: consumer.exceptions > 0,
    cells: [
      formatNumber(consumer.headcount_in), formatNumber(consumer.headcount_out), rate,
      formatNumber(consumer.backlog),
      consumer.queue_depth == null ? "–" : formatNumber(consumer.queue_depth),
      formatNumber(consumer.exceptions),
    ],
  };
}

function producerRow(producer) {
  const every = typeof producer.frequency === "number" ? `${formatNumber(producer.frequency)} s` : "–";
  // In a cluster a singleton producer polls on its leader only.
  const ran = producer.leader === false ? "on another node"
    : producer.last_ran ? clock(producer.last_ran * 1000) : "–";
  return {
    key: `${producer.module}.${producer.name}`, name: producer.name, title: producer.module, failing: producer.exceptions > 0,
    cells: [every, ran, formatNumber(producer.exceptions)],
  };
}

/**
 * One item per node alive: its clients and the producers it leads; this node first,
 * with its clients as of now (the others' as of their last heartbeat).
 */
function clusterItems(cluster, ownLive) {
  const leading = new Map();
  for (const [lock, node] of Object.entries(cluster.leaders || {})) {
    leading.set(node, [...(leading.get(node) || []), lock.replace(/^producer:.*\./, "")]);
  }
  const names = Object.keys(cluster.nodes || {}).sort((a, b) =>
    (b === cluster.node) - (a === cluster.node) || a.localeCompare(b));
  if (!cluster.store_reachable) {
    return [{ name: "store", state: "disconnected", text: "shared store unreachable" }];
  }
  return names.map((name) => {
    const live = name === cluster.node && ownLive ? ownLive : (cluster.nodes[name] || {}).livesocket;
    const clients = live ? `${live.clients} client${live.clients === 1 ? "" : "s"}` : "no live socket";
    const leads = leading.get(name);
    const text = `${name}${name === cluster.node ? " (this node)" : ""}: ${clients}` +
      (leads ? `, leads ${leads.join(", ")}` : "");
    return { name, state: "connected", text };
  });
}

function backendItem(item) {
  const state = item.connected ? "connected" : "disconnected";
  return { name: item.name, state, text: `${item.name}: ${state}` };
}

/** The backends' list, item by item: only what changed is touched. */
function updateList(list, items) {
  items.forEach((item, index) => {
    let li = list.children[index];
    if (!li || li.dataset.name !== item.name) {
      li = h("li", { dataset: { name: item.name } }, h("span", { className: "moksha-dot" }), h("span"));
      list.insertBefore(li, list.children[index] || null);
    }
    if (li.dataset.state !== item.state) li.dataset.state = item.state;
    setText(li.lastElementChild, item.text);
  });
  while (list.children.length > items.length) list.lastElementChild.remove();
}

function section(title, content) {
  return h("section", { className: "moksha-status-section" }, h("h3", { text: title }), content);
}
