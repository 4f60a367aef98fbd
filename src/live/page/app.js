// The live page: one tile per device, grouped by modality, redrawn from each state the
// server sends on /api/events. Every name from the input is set with textContent, never
// as markup.
"use strict";

const GROUPS = ["MRI", "CT", "PET-CT", "SPECT", "LINAC", "other"];
const LABELS = {
  in_band: "in band",
  near_limit: "near limit",
  out_of_band: "out of band",
  silent: "silent",
  no_value: "no reading",
};
const SVG = "http://www.w3.org/2000/svg";

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmt(v) {
  return v === null || v === undefined ? "–" : v.toFixed(1) + "%";
}

function sparkline(points, band) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 100 30");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("aria-hidden", "true");
  if (points.length === 0) return svg;
  let lo = Math.min(...points.map((p) => p[1]));
  let hi = Math.max(...points.map((p) => p[1]));
  if (band && band[0] !== null) lo = Math.min(lo, band[0]);
  if (band && band[1] !== null) hi = Math.max(hi, band[1]);
  if (hi - lo < 1) { hi += 0.5; lo -= 0.5; }
  // The axis spans what there is, up to the last 30 minutes.
  const t1 = points[points.length - 1][0];
  const t0 = Math.min(points[0][0], t1 - 1000);
  const x = (t) => ((t - t0) / (t1 - t0)) * 100;
  const y = (v) => 30 - ((v - lo) / (hi - lo)) * 30;
  if (band && band[0] !== null && band[1] !== null) {
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("x", "0");
    rect.setAttribute("width", "100");
    rect.setAttribute("y", String(y(band[1])));
    rect.setAttribute("height", String(Math.max(0, y(band[0]) - y(band[1]))));
    svg.appendChild(rect);
  }
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", points.map((p) => x(p[0]).toFixed(2) + "," + y(p[1]).toFixed(2)).join(" "));
  svg.appendChild(line);
  return svg;
}

function tile(d) {
  const node = el("article", "tile " + d.state);
  node.dataset.state = d.state;
  node.appendChild(el("bdi", "name", d.device));
  node.appendChild(el("div", "value", fmt(d.value)));
  node.appendChild(el("div", "state", LABELS[d.state] || d.state));
  const band = d.band ? "band " + (d.band[0] ?? "–") + "–" + (d.band[1] ?? "–") + "% RH" : "no rules";
  node.appendChild(el("div", "meta", band));
  const silent = d.silent > 0 ? ", " + d.silent + " silent" : "";
  node.appendChild(el("div", "meta", d.sensors + " sensors" + silent));
  if (d.maintenance) {
    node.classList.add("maintenance");
    node.dataset.maintenance = "true";
    const maintenance = el("div", "maintenance", "in maintenance: ");
    maintenance.appendChild(el("bdi", null, d.maintenance));
    node.appendChild(maintenance);
  }
  node.appendChild(sparkline(d.spark, d.band));
  return node;
}

// Names from the input sit in <bdi>: a right-to-left override (U+202E) in a name reverses
// only the name, never the text around it.
function alertLine(a) {
  const value = a.value === null ? "" : " value " + a.value.toFixed(2);
  const li = el("li", a.state, a.time + "  ");
  li.appendChild(el("bdi", null, a.device));
  li.appendChild(document.createTextNode(" " + a.kind + " " + a.state));
  if (a.sensor !== null) {
    li.appendChild(document.createTextNode(" sensor "));
    li.appendChild(el("bdi", null, a.sensor));
  }
  li.appendChild(document.createTextNode(value + " (limit " + a.limit + ")"));
  li.dataset.device = a.device;
  li.dataset.kind = a.kind;
  if (a.shelved) li.appendChild(el("span", "shelved", " (shelved: maintenance)"));
  if (a.silenced) {
    li.dataset.silenced = "true";
    const silenced = el("span", "silenced", " silenced in Alertmanager by ");
    silenced.appendChild(el("bdi", null, a.silenced.by));
    silenced.appendChild(document.createTextNode(" until " + a.silenced.until));
    if (a.silenced.comment) {
      silenced.appendChild(document.createTextNode(": "));
      silenced.appendChild(el("bdi", null, a.silenced.comment));
    }
    li.appendChild(silenced);
  }
  return li;
}

function render(s) {
  document.body.dataset.epoch = String(s.epoch);
  document.getElementById("t-messages").textContent = s.totals.messages.toLocaleString("en");
  document.getElementById("t-rejected").textContent = s.totals.rejected.toLocaleString("en");
  document.getElementById("t-late").textContent = s.totals.late.toLocaleString("en");
  document.getElementById("t-sensors").textContent = s.totals.sensors.toLocaleString("en");
  document.getElementById("t-time").textContent = s.time;
  document.getElementById("value-note").textContent = s.windowed_value
    ? "Values are each device's mean over its rule window, as the alerts compare it."
    : "Values are the report's averages.";
  const active = document.getElementById("active");
  active.replaceChildren(...s.active.map(alertLine));
  if (s.active.length === 0) active.appendChild(el("li", "resolved", "none"));
  const total = s.active_total === undefined ? s.active.length : s.active_total;
  document.getElementById("active-count").textContent = "(" + total + ")";
  if (total > s.active.length) {
    active.appendChild(el("li", "more", "… and " + (total - s.active.length).toLocaleString("en") + " more (all of them in the report's alerts_active)"));
  }
  document.getElementById("recent").replaceChildren(...s.recent.map(alertLine));
  const groups = document.getElementById("groups");
  const sections = [];
  for (const g of GROUPS) {
    const devices = s.devices
      .filter((d) => d.modality === g)
      .sort((a, b) => a.device.localeCompare(b.device, "en", { numeric: true }));
    if (devices.length === 0) continue;
    const section = el("section", "group");
    const heading = el("h3");
    heading.appendChild(el("bdi", null, g));
    heading.appendChild(document.createTextNode(" (" + devices.length + ")"));
    section.appendChild(heading);
    const tiles = el("div", "tiles");
    tiles.replaceChildren(...devices.map(tile));
    section.appendChild(tiles);
    sections.push(section);
  }
  if (s.more_devices > 0) {
    sections.push(el("p", "more", "… and " + s.more_devices.toLocaleString("en") + " more devices: the " + s.devices.length + " that need attention most are shown."));
  }
  groups.replaceChildren(...sections);
}

function connect() {
  const status = document.getElementById("status");
  const source = new EventSource("/api/events");
  source.addEventListener("state", (e) => {
    render(JSON.parse(e.data));
    status.textContent = "live";
    status.classList.remove("down");
  });
  source.onerror = () => {
    // EventSource reconnects by itself (the server asks for 1 s); say so meanwhile.
    status.textContent = "reconnecting…";
    status.classList.add("down");
    if (source.readyState === EventSource.CLOSED) {
      setTimeout(connect, 2000);
    }
  };
}

connect();
