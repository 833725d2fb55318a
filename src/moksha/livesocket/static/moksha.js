/*
 * moksha.js: the Moksha live-socket client. No framework, no build step, no dependency.
 *
 * Load it from the hub, as a classic script (it defines window.moksha):
 *
 *     <script src="http://HUB:PORT/livesocket/moksha.js"></script>
 *
 * or as an ES module through its twin moksha.mjs, which exports the same object:
 *
 *     import moksha from "http://HUB:PORT/livesocket/moksha.mjs";
 *
 * The page talks to the hub the script came from (whatever the page's own origin),
 * unless moksha.connect({url}) names another. One WebSocket per page, opened at
 * the first subscribe or send_message and shared by every subscription.
 *
 *   moksha.subscribe(pattern, callback)  callback({topic, body, id, summary?}) for each message
 *                                        (summary: what the message's schema says it means)
 *       whose topic matches pattern ("*" = one word, "#" = any words); several
 *       callbacks per pattern are fine. Returns a function that unsubscribes it.
 *   moksha.unsubscribe(pattern[, callback])  that callback, or every one of the pattern.
 *   moksha.send_message(topic, body)  publish; the hub refuses unless its
 *       moksha.livesocket.publish_allow lists the topic (an "error" event says so).
 *   moksha.connect({url, token})  use this hub (its base URL, or any URL under
 *       BASE/livesocket) and/or this auth token (sent as the first frame, ?token= for
 *       SSE); reconnects now if the page has subscriptions, else at the first one.
 *   moksha.connect({urls: [url, ...]})  the nodes of one cluster (moksha.cluster.url):
 *       the client uses one, and moves to the next when it cannot connect, loses its
 *       connection, or the node closes it with 1012 (stopping: "go elsewhere"). Event
 *       ids are the cluster's, so it resumes on the next node with nothing missed.
 *   moksha.close()  disconnect and stop reconnecting (until the next call above).
 *   moksha.history(pattern, {count, seconds})  a Promise of the newest stored
 *       messages on pattern ({topic, body, id, time}, oldest first; time in seconds
 *       since 1970), at most count (100) and none older than seconds (the hub's
 *       history age): what a widget shows before the first live message.
 *   moksha.on(event, fn) / moksha.off(event, fn), events:
 *       "state"      fn("connecting" | "open" | "closed")
 *       "error"      fn({error, frame}) refused frames; fn({error, code}) policy closes
 *       "recovered"  fn({pattern, recovered}) after a reconnect replayed what the page
 *                    missed; recovered === false means messages were lost (the gap
 *                    outgrew the hub's history): the page should reload. No default.
 *   moksha.state, moksha.transport ("websocket" | "sse" | null), moksha.url
 *
 * Reconnection: exponential backoff from 0.5 s to 15 s with full jitter, at once
 * when the browser comes back online. Each pattern is resubscribed with the id of
 * the last event it saw (or, having seen none, the hub's position when it
 * subscribed), so the hub replays what was missed; an event already seen (same
 * epoch, seq not greater) is ignored. If the WebSocket fails to open twice in
 * a row and never opened on this page, the client falls back to Server-Sent Events
 * for good (publishing then needs the WebSocket; it reports an error).
 */
(function (global) {
  "use strict";
  if (global.moksha) return; // loaded twice (e.g. two embeds): keep one socket

  var MIN_DELAY_MS = 500;
  var MAX_DELAY_MS = 15000;
  var WS_FAILURES_BEFORE_SSE = 2;
  var MAX_PENDING = 100; // messages sent while connecting, flushed on open
  var OPEN = 1; // WebSocket.OPEN
  // Closes that mean "do not hurry back": rate limit, policy, oversized frame.
  var POLICY_CLOSES = [1008, 1009, 4001, 4008];

  var script = global.document && global.document.currentScript;
  var base = script && script.src ? baseOf(script.src) : null;
  var token = null;
  var subs = new Map(); // pattern -> {callbacks, lastId, epoch, seq, sent}
  var handlers = { state: [], error: [], recovered: [] };
  var ws = null, es = null, timer = null, sseRefresh = false;
  var attempt = 0, wsFailures = 0, wsOpened = false, stopped = false;
  var pending = [];
  var newest = null; // {id, epoch, seq} of the newest event the page has seen
  var position = null; // the same, of the hub's newest position it told (see onPosition)
  var bases = null; // the base URLs of a cluster's nodes, when connect({urls}) named them

  var moksha = {
    state: "closed",
    transport: null,
    get url() { return base; },
    subscribe: subscribe,
    unsubscribe: unsubscribe,
    send_message: sendMessage,
    connect: connect,
    close: close,
    history: history,
    on: function (event, fn) { listeners(event).push(fn); return moksha; },
    off: function (event, fn) {
      var list = listeners(event), at = list.indexOf(fn);
      if (at >= 0) list.splice(at, 1);
      return moksha;
    },
  };

  // -- the API ----------------------------------------------------------------

  function subscribe(pattern, callback) {
    if (typeof pattern !== "string" || typeof callback !== "function") {
      throw new TypeError("moksha.subscribe(pattern: string, callback: function)");
    }
    var sub = subs.get(pattern);
    if (sub) {
      sub.callbacks.push(callback);
    } else {
      // Its position starts at the newest event seen: anything older is not news to it.
      sub = { callbacks: [callback], lastId: null, epoch: null, seq: -1, sent: false };
      if (newest) { sub.lastId = newest.id; sub.epoch = newest.epoch; sub.seq = newest.seq; }
      subs.set(pattern, sub);
      if (ws && ws.readyState === OPEN) ws.send(subscribeFrame(pattern, sub));
      else if (es) refreshSse();
      start();
    }
    return function () { unsubscribe(pattern, callback); };
  }

  function unsubscribe(pattern, callback) {
    var sub = subs.get(pattern);
    if (!sub) return;
    if (callback) {
      sub.callbacks = sub.callbacks.filter(function (fn) { return fn !== callback; });
      if (sub.callbacks.length) return;
    }
    subs.delete(pattern);
    if (ws && ws.readyState === OPEN) ws.send(frame("__topic_unsubscribe__", pattern));
    else if (es) refreshSse();
  }

  function sendMessage(topic, body) {
    if (moksha.transport === "sse") {
      return emit("error", { error: "cannot publish: this page fell back to Server-Sent " +
        "Events, which only receive", frame: topic });
    }
    var text = frame(topic, body);
    if (ws && ws.readyState === OPEN) return ws.send(text);
    if (pending.length >= MAX_PENDING) {
      emit("error", { error: "not connected: dropped the oldest unsent message",
        frame: pending.shift() });
    }
    pending.push(text);
    start();
  }

  function connect(options) {
    options = options || {};
    if (options.urls) {
      var list = Array.prototype.map.call(options.urls, baseOf);
      if (!list.length) throw new TypeError("moksha.connect: urls names no node");
      // A node of the same cluster keeps the page's event ids; a new cluster does not.
      var known = list.indexOf(base) >= 0;
      bases = list;
      if (!known) switchHub(list[0]);
    } else if (options.url && baseOf(options.url) !== base) {
      bases = null;
      switchHub(baseOf(options.url));
    }
    if ("token" in options) token = options.token || null;
    stopped = false;
    drop();
    attempt = 0;
    if (subs.size || pending.length) open();
    return moksha;
  }

  function switchHub(url) {
    // Another hub: its event ids mean nothing here, and its WebSocket may well work.
    base = url;
    newest = null;
    subs.forEach(function (sub) {
      sub.lastId = sub.epoch = null; sub.seq = -1; sub.sent = false;
    });
    wsFailures = 0; wsOpened = false; moksha.transport = null;
  }

  // The next node of the cluster, if connect({urls}) named several: same ids, same history.
  function nextNode() {
    if (!bases || bases.length < 2) return;
    base = bases[(bases.indexOf(base) + 1) % bases.length];
  }

  function close() {
    stopped = true;
    drop();
    setState("closed");
  }

  function history(pattern, options) {
    options = options || {};
    var query = ["topic=" + encodeURIComponent(pattern)];
    if (options.count !== undefined) query.push("count=" + encodeURIComponent(options.count));
    if (options.seconds) query.push("seconds=" + encodeURIComponent(options.seconds));
    if (token) query.push("token=" + encodeURIComponent(token));
    return fetch(hubUrl() + "/livesocket/history?" + query.join("&"), { cache: "no-store" })
      .then(function (response) {
        return response.json().then(function (answer) {
          if (!response.ok) throw new Error(answer.error || "HTTP " + response.status);
          return answer.events;
        });
      });
  }

  // -- connecting -------------------------------------------------------------

  function start() {
    stopped = false;
    if (!ws && !es && !timer) open();
  }

  function open() {
    clearTimeout(timer);
    timer = null;
    var noWebSocket = typeof global.WebSocket !== "function";
    if (moksha.transport === "sse" || noWebSocket ||
        (!wsOpened && wsFailures >= WS_FAILURES_BEFORE_SSE)) {
      openSse();
    } else {
      openWebSocket();
    }
  }

  function openWebSocket() {
    moksha.transport = "websocket";
    setState("connecting");
    var opened = false, socket;
    try {
      socket = ws = new WebSocket(hubUrl().replace(/^http/, "ws") + "/livesocket/ws");
    } catch (err) { // refused before trying, e.g. by the page's Content-Security-Policy
      wsFailures += 1;
      setState("closed");
      return retry();
    }
    socket.onopen = function () {
      opened = wsOpened = true;
      wsFailures = 0;
      if (token) socket.send(frame("__auth__", token));
      subs.forEach(function (sub, pattern) { socket.send(subscribeFrame(pattern, sub)); });
      pending.splice(0).forEach(function (text) { socket.send(text); });
      setState("open");
    };
    socket.onmessage = function (event) { receive(event.data); };
    socket.onclose = function (event) {
      if (ws !== socket) return; // replaced or closed on purpose
      ws = null;
      var policy = POLICY_CLOSES.indexOf(event.code) >= 0;
      if (policy) emit("error", { error: event.reason || "closed by the hub", code: event.code });
      if (!opened) wsFailures += 1;
      else if (!policy) attempt = 0; // it worked: the next drop starts the backoff afresh
      if (!policy) nextNode(); // 1012 "service restart" above all: that node is stopping
      setState("closed");
      if (event.code !== 4001) retry(); // a bad token stays bad: wait for connect({token})
    };
  }

  function openSse() {
    moksha.transport = "sse";
    if (es) es.close();
    es = null;
    if (pending.length) {
      emit("error", { error: "cannot publish: fell back to Server-Sent Events, which only " +
        "receive; dropped " + pending.length + " unsent message(s)" });
      pending = [];
    }
    if (!subs.size) return setState("closed");
    setState("connecting");
    var query = [];
    subs.forEach(function (sub, pattern) { query.push("topic=" + encodeURIComponent(pattern)); });
    // One stream carries every pattern in order, so the newest id seen is where it resumes
    // (the EventSource itself sends Last-Event-ID when it reconnects on its own).
    var from = newest || position;
    if (from) query.push("since=" + encodeURIComponent(from.id));
    query.push("position=1");
    if (token) query.push("token=" + encodeURIComponent(token));
    var source = es = new EventSource(hubUrl() + "/livesocket/sse?" + query.join("&"));
    source.onopen = function () { attempt = 0; setState("open"); };
    source.onmessage = function (event) { receive(event.data); };
    source.onerror = function () {
      if (es !== source) return;
      if (source.readyState !== EventSource.CLOSED && !(bases && bases.length > 1)) {
        return setState("connecting"); // the browser reconnects, with Last-Event-ID
      }
      if (source.readyState !== EventSource.CLOSED) source.close(); // we move to another node
      nextNode();
      es = null; // refused (HTTP error, CORS): the browser will not retry, so we do
      setState("closed");
      retry();
    };
  }

  // The EventSource names its patterns in its URL: after changes, open a new one (once).
  function refreshSse() {
    if (sseRefresh) return;
    sseRefresh = true;
    Promise.resolve().then(function () {
      sseRefresh = false;
      if (moksha.transport === "sse" && !stopped && !timer) openSse();
    });
  }

  function retry() {
    if (stopped || timer) return;
    var delay = Math.random() * Math.min(MAX_DELAY_MS, MIN_DELAY_MS * Math.pow(2, attempt));
    attempt += 1;
    timer = setTimeout(open, delay);
  }

  function drop() {
    clearTimeout(timer);
    timer = null;
    var socket = ws, source = es;
    ws = es = null; // first, so their close handlers know it was on purpose
    if (socket) socket.close(1000);
    if (source) source.close();
  }

  // -- receiving --------------------------------------------------------------

  function receive(text) {
    var message;
    try { message = JSON.parse(text); } catch (err) { return; }
    if (!message || typeof message.topic !== "string") return;
    if (message.topic === "__error__") return emit("error", message.body);
    if (message.topic === "__recovered__") return emit("recovered", message.body);
    if (message.topic === "__position__") return onPosition(message);
    var at = parseId(message.id);
    if (at && (!newest || newest.epoch !== at.epoch || at.seq > newest.seq)) newest = at;
    var event = { topic: message.topic, body: message.body, id: message.id };
    if (typeof message.summary === "string") event.summary = message.summary; // from its schema
    subs.forEach(function (sub, pattern) {
      if (!matches(pattern, message.topic)) return;
      if (at) {
        // Replays for overlapping patterns, or a replay racing live frames: once is enough.
        if (sub.epoch === at.epoch && at.seq <= sub.seq) return;
        sub.lastId = at.id; sub.epoch = at.epoch; sub.seq = at.seq;
      }
      sub.callbacks.slice().forEach(function (fn) { call(fn, event); });
    });
  }

  // Where the hub's history stood when a subscription began: a pattern that has seen no
  // event resumes from there, so what is published while it reconnects is replayed. Not
  // its seq: an event older than the position may still arrive live, and is news.
  function onPosition(message) {
    var at = parseId(message.id), sub = subs.get(message.body && message.body.pattern);
    if (!at) return;
    if (!position || position.epoch !== at.epoch || at.seq > position.seq) position = at;
    if (sub && (!sub.lastId || sub.epoch !== at.epoch)) {
      sub.lastId = at.id; sub.epoch = at.epoch; sub.seq = -1;
    }
  }

  function parseId(id) {
    if (typeof id !== "string") return null;
    var cut = id.lastIndexOf("-"), seq = Number(id.slice(cut + 1));
    return cut > 0 && isFinite(seq) ? { id: id, epoch: id.slice(0, cut), seq: seq } : null;
  }

  // The AMQP rules, as moksha.topics has them: "*" one word, "#" zero or more words.
  function matches(pattern, topic) {
    var want = words(pattern), have = words(topic);
    function from(p, t) {
      if (p === want.length) return t === have.length;
      if (want[p] === "#") return from(p + 1, t) || (t < have.length && from(p, t + 1));
      return t < have.length && (want[p] === "*" || want[p] === have[t]) && from(p + 1, t + 1);
    }
    return from(0, 0);
  }

  function words(topic) { return topic ? topic.split(".") : []; }

  // -- helpers ----------------------------------------------------------------

  function subscribeFrame(pattern, sub) {
    // A pattern's first subscription is live from now on; later ones ask for what it missed.
    var body = { pattern: pattern, position: true };
    if (sub.sent && sub.lastId) body.since = sub.lastId;
    sub.sent = true;
    return frame("__topic_subscribe__", body);
  }

  function frame(topic, body) { return JSON.stringify({ topic: topic, body: body }); }

  // The hub's base URL from any URL under it: http(s)://host:port[/prefix].
  function baseOf(url) {
    var u = new URL(url, global.location && global.location.href);
    var path = u.pathname, cut = path.indexOf("/livesocket");
    if (cut >= 0) path = path.slice(0, cut);
    return u.protocol.replace("ws", "http") + "//" + u.host + path.replace(/\/$/, "");
  }

  function hubUrl() { return base || global.location.origin; }

  function setState(state) {
    if (moksha.state === state) return;
    moksha.state = state;
    emit("state", state);
  }

  function listeners(event) {
    if (!handlers[event]) throw new TypeError("moksha.on: unknown event " + event);
    return handlers[event];
  }

  function emit(event, value) {
    handlers[event].slice().forEach(function (fn) { call(fn, value); });
  }

  // A failing callback must not stop the others, nor the client.
  function call(fn, value) {
    try { fn(value); } catch (err) { setTimeout(function () { throw err; }); }
  }

  if (global.addEventListener) {
    global.addEventListener("online", function () {
      // The network is back: no point waiting out the backoff, or an attempt begun offline.
      if (stopped || moksha.state === "open" || !(timer || ws || es)) return;
      drop();
      attempt = 0;
      open();
    });
  }

  global.moksha = moksha;
})(typeof globalThis !== "undefined" ? globalThis : window);
