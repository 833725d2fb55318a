/*
 * Moksha's web components, for any page (Python or not). Two script tags:
 *
 *     <script src="/livesocket/moksha.js"></script>
 *     <script type="module" src="/_moksha/static/widgets/moksha-widgets.js"></script>
 *
 * (prefix both with the Moksha server's URL when the page comes from elsewhere), then:
 *
 *     <moksha-grid columns="2">
 *       <moksha-chart span="2" topic="moksha.demo.system" fields="load1,load5"></moksha-chart>
 *       <moksha-feed topic="moksha.demo.#" limit="20"></moksha-feed>
 *       <moksha-inspector pattern="#"></moksha-inspector>
 *       <moksha-hub-status></moksha-hub-status>
 *     </moksha-grid>
 *     <moksha-live topic="org.example.#" onmessage="this.textContent = json.text"></moksha-live>
 *
 * Each element's file documents its attributes. This module links the stylesheet
 * (moksha-widgets.css, next to it) unless the page already does.
 */
import { MokshaChart } from "./chart.js";
import { MokshaFeed } from "./feed.js";
import { MokshaGrid } from "./grid.js";
import { MokshaHubStatus } from "./hub-status.js";
import { MokshaInspector } from "./inspector.js";
import { MokshaConnection, MokshaLive } from "./live.js";

const STYLESHEET = new URL("./moksha-widgets.css", import.meta.url).href;

// Defined in this order: <moksha-connection> last, so it shows the state the widgets'
// subscriptions have already set in motion.
const ELEMENTS = {
  "moksha-chart": MokshaChart,
  "moksha-feed": MokshaFeed,
  "moksha-grid": MokshaGrid,
  "moksha-hub-status": MokshaHubStatus,
  "moksha-inspector": MokshaInspector,
  "moksha-live": MokshaLive,
  "moksha-connection": MokshaConnection,
};

function linkStylesheet() {
  const linked = [...document.querySelectorAll('link[rel="stylesheet"]')]
    .some((link) => link.href === STYLESHEET);
  if (!linked) document.head.append(Object.assign(document.createElement("link"), { rel: "stylesheet", href: STYLESHEET }));
}

linkStylesheet();
for (const [name, element] of Object.entries(ELEMENTS)) {
  // Another copy of this module (another URL) may have defined them already: keep those.
  if (!customElements.get(name)) customElements.define(name, element);
}

export { MokshaChart, MokshaConnection, MokshaFeed, MokshaGrid, MokshaHubStatus, MokshaInspector, MokshaLive };
