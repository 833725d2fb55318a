/*
 * <moksha-grid columns="3">
 *   <div span="2">…</div> <div>…</div>
 * </moksha-grid>
 *   Lays its children out in `columns` columns on a wide screen, two on a tablet and one
 *   on a phone; a child spans `span` columns (at most as many as there are). The layout
 *   itself is CSS (moksha-widgets.css): this only turns the attributes into its variables,
 *   which the Python Grid writes directly.
 */
export class MokshaGrid extends HTMLElement {
  static observedAttributes = ["columns"];

  connectedCallback() {
    this.classList.add("moksha-grid");
    this.apply();
    // Children added later (a page building its dashboard in script) get their span too.
    this._observer = new MutationObserver(() => this.apply());
    this._observer.observe(this, { childList: true });
  }

  disconnectedCallback() {
    if (this._observer) this._observer.disconnect();
  }

  attributeChangedCallback() {
    if (this.isConnected) this.apply();
  }

  apply() {
    const columns = parseInt(this.getAttribute("columns"), 10);
    if (columns >= 1) this.style.setProperty("--moksha-columns", columns);
    for (const child of this.children) {
      const span = parseInt(child.getAttribute("span"), 10);
      if (span >= 1) child.style.setProperty("--moksha-span", span);
    }
  }
}
