// moksha.mjs: moksha.js as an ES module (see moksha.js for the API).
//
//     import moksha from "http://HUB:PORT/livesocket/moksha.mjs";
//
// Both files define the same single client: a page that loads both shares one socket.
import "./moksha.js";

const moksha = globalThis.moksha;
// A module cannot see its <script> element, so moksha.js learns its hub from this URL.
if (!moksha.url) moksha.connect({ url: import.meta.url });

export default moksha;
