/*
 * <moksha-live topic="org.example.#" onmessage="this.textContent = json.temperature">
 *   Runs its onmessage code for each message on topic (several patterns: separate them
 *   with spaces), with `json` (the body), `topic` and `message` ({topic, body, id}) in
 *   scope and `this` the element — the original Moksha LiveWidget, as an element.
 *   The code is compiled like an inline event handler (the page's Content-Security-Policy
 *   must allow that); handlers set as a property work too: el.onmessage = fn.
 *
 * <moksha-connection>
 *   The state of the page's live-socket connection: live, connecting, offline.
 */
import { MokshaElement, client, h } from "./common.js";

export class MokshaLive extends MokshaElement {
  static observedAttributes = ["topic", "onmessage"];

  start() {
    const handler = this.handler();
    if (!handler) return;
    const patterns = (this.getAttribute("topic") || "").split(/\s+/).filter(Boolean);
    if (!patterns.length) return this.problem("set the topic attribute");
    for (const pattern of patterns) {
      this.subscribe(pattern, (message) => handler.call(this, message.body, message.topic, message));
    }
  }

  handler() {
    if (typeof this._onmessage === "function") return this._onmessage;
    const code = this.getAttribute("onmessage");
    if (!code) return null; // nothing to run yet: the property may be set later
    try {
      return new Function("json", "topic", "message", code);
    } catch (err) {
      this.problem(`its onmessage code does not compile: ${err.message}`);
      return null;
    }
  }

  set onmessage(fn) {
    this._onmessage = fn;
    if (this.isConnected) this.attributeChangedCallback("onmessage", null, "property");
  }

  get onmessage() {
    return this._onmessage || null;
  }
}

// "closed" before any subscription too: a page with nothing live has no connection.
const STATES = { open: "live", connecting: "connecting…", closed: "offline" };

export class MokshaConnection extends HTMLElement {
  connectedCallback() {
    const moksha = client();
    this.classList.add("moksha-connection");
    this.setAttribute("role", "status");
    if (!moksha) return this.show("closed", "no live-socket client");
    this._listener = (state) => this.show(state);
    moksha.on("state", this._listener);
    this.show(moksha.state);
  }

  disconnectedCallback() {
    if (this._listener && client()) client().off("state", this._listener);
  }

  show(state, text) {
    this.dataset.state = state;
    this.replaceChildren(h("span", { className: "moksha-dot" }), text || STATES[state] || state);
  }
}
