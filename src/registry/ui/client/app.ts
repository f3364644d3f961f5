/**
 * The web view's page script (bundled by esbuild into app.js; cytoscape,
 * for meshes of up to BIG peers, into a chunk loaded only then). It keeps
 * the token in sessionStorage, sends it only in an Authorization header,
 * and puts every name into the DOM with textContent (both graphs draw
 * labels on a canvas): nothing from the registry is ever parsed as markup.
 *
 * Live: a fetch-streamed `view/events` (EventSource cannot send headers)
 * wakes the page; it then reads /view again, at most every RELOAD_MS.
 */
import type cytoscape from "cytoscape";
import type { PathKind, ViewData } from "../../../core/protocol.js";
import { CanvasGraph } from "./canvas-graph.js";
import { edgesOf, rowsOf, sortRows, whyNot, type Edge, type Row, type SortKey } from "./model.js";

performance.mark("script");
const RELOAD_MS = 250;
const RETRY_MS = 1000;
/** More rows than this are not put in the DOM at once; the filter narrows them. */
const MAX_ROWS = 400;
/** The graph draws at most this many pair edges (a 1 000-peer mesh has half a million pairs). */
const MAX_EDGES = 4000;
/**
 * Above this many peers the graph is drawn for speed (canvas-graph.ts):
 * straight unlabelled edges, peer labels once zoomed in enough to read.
 */
const BIG = 200;

/** The NAT kinds as an operator says them (netcheck's words). */
const NAT_WORDS: Record<string, string> = {
  none: "public",
  "endpoint-independent": "open NAT",
  "endpoint-dependent": "symmetric NAT",
  unknown: "NAT unknown",
};

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const el = (tag: string, text = "", cls = ""): HTMLElement => {
  const e = document.createElement(tag);
  e.textContent = text;
  if (cls) e.className = cls;
  return e;
};

let net = "";
let token = "";
let view: ViewData | undefined;
let rows: Row[] = [];
let edges = new Map<string, Edge>();
let sort: { key: SortKey; down: boolean } = { key: "fromName", down: false };
let cy: cytoscape.Core | undefined;
let cyModule: Promise<{ default: typeof cytoscape }> | undefined;
let canvas: CanvasGraph | undefined;
let reloadTimer: number | undefined;
let lastLoad = 0;
let selected: string | undefined;
/** When the load being drawn began: the next painted frame ends its render time. */
let loadStart: number | undefined;

function setState(state: string, text: string): void {
  document.body.dataset.state = state;
  $("status").textContent = text;
}

async function api(path: string, signal?: AbortSignal): Promise<Response> {
  const r = await fetch(`/v1/networks/${encodeURIComponent(net)}${path}`, {
    headers: { authorization: `Bearer ${token}` },
    cache: "no-store",
    ...(signal ? { signal } : {}),
  });
  if (r.status === 401 || r.status === 403) {
    sessionStorage.removeItem("scope-view-token");
    showLogin("the registry refused this token");
    throw new Error(`refused: ${r.status}`);
  }
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r;
}

async function load(): Promise<void> {
  lastLoad = Date.now();
  const t0 = performance.now();
  performance.mark("view-request");
  const resp = await api("/view");
  performance.mark("view-response");
  view = (await resp.json()) as ViewData;
  performance.mark("view-parsed");
  rows = rowsOf(view);
  edges = new Map(edgesOf(rows).map((e) => [e.key, e]));
  performance.mark("model");
  loadStart = t0;
  await drawGraph(view);
  performance.mark("graph");
  drawTable();
  performance.mark("table");
  drawDetail();
  $("title").textContent = `${view.network.name} · ${view.network.cidr} · ${view.network.topology}`;
  $("counts").textContent = `${view.peers.length} peers, ${edges.size} pairs reported`;
  document.body.dataset.peers = String(view.peers.length);
}

function scheduleLoad(): void {
  if (reloadTimer !== undefined) return;
  const wait = Math.max(0, lastLoad + RELOAD_MS - Date.now());
  reloadTimer = window.setTimeout(() => {
    reloadTimer = undefined;
    load().catch((e: Error) => setState("error", e.message));
  }, wait);
}

// ---- graph ---------------------------------------------------------------

const COLOURS: Record<PathKind, string> = {
  direct: "#2e9b4a",
  hub: "#d08a2a",
  pending: "#999",
  none: "#c0392b",
};
const DASH: Record<PathKind, "solid" | "dashed" | "dotted"> = {
  direct: "solid",
  hub: "dashed",
  pending: "dotted",
  none: "dotted",
};
/** The same dashes on the big mesh's canvas, in screen pixels. */
const DASH_PX: Record<string, number[]> = { solid: [], dashed: [6, 3], dotted: [1, 2] };
const NODE = "#4a7bd0";

let frames = 0;

/**
 * A frame showing `n` peers is on the screen: for tests and the render
 * time. The canvas graph also counts its frames and says how long the last
 * one took to draw (`ms`), so a test can see a pan or zoom answered.
 */
function painted(n: number, ms?: number): void {
  const graph = $("graph");
  const drawn = String(n);
  if (graph.dataset.drawn !== drawn) graph.dataset.drawn = drawn;
  if (ms !== undefined) {
    graph.dataset.frames = String(++frames);
    graph.dataset.drawMs = ms.toFixed(1);
  }
  if (loadStart !== undefined) {
    document.body.dataset.renderMs = String(Math.round(performance.now() - loadStart));
    loadStart = undefined;
    performance.mark("painted");
  }
}

function pick(id: string): void {
  selected = id;
  drawDetail();
}

const nodeLabel = (p: ViewData["peers"][number]): string[] => [p.name, p.address, NAT_WORDS[p.nat] ?? p.nat];

/**
 * A big mesh (more than BIG peers) is drawn by canvas-graph.ts, a small one
 * by cytoscape (curved hub edges, edge labels, loaded only then: most of
 * app.js's size before it was split off).
 */
async function drawGraph(v: ViewData): Promise<void> {
  const big = v.peers.length > BIG;
  const shown = [...edges.values()].slice(0, MAX_EDGES);
  const { pos, radius } = rings(v);
  let ids: string[];
  if (big) {
    destroyCy();
    const first = !canvas;
    canvas ??= new CanvasGraph(
      $("graph"),
      { colours: COLOURS, dashes: mapValues(DASH, (d) => DASH_PX[d] ?? []), node: NODE, hub: COLOURS.hub },
      pick,
      painted,
    );
    const before = new Set(canvas.ids());
    const nodes = v.peers.map((p) => ({
      id: p.id,
      ...(pos.get(p.id) ?? { x: 0, y: 0 }),
      hub: p.role === "hub",
      label: nodeLabel(p),
    }));
    const changed = first || nodes.length !== before.size || nodes.some((n) => !before.has(n.id));
    canvas.set(
      nodes,
      shown.map((e) => ({ id: `e${e.key}`, a: e.a, b: e.b, path: e.path })),
      radius,
      changed,
    );
    ids = canvas.ids();
  } else {
    canvas?.destroy();
    canvas = undefined;
    ids = await drawCy(v, shown, pos, radius);
  }
  // What is drawn, for tests and scripts reading the page (ids only: names are in the table).
  const graph = $("graph");
  graph.dataset.nodes = String(ids.length);
  graph.dataset.nodeIds = ids.join(" ");
  graph.dataset.edges = String(shown.length);
  $("graph-note").textContent =
    edges.size > MAX_EDGES
      ? `graph shows ${MAX_EDGES} of ${edges.size} pairs; the table has all of them`
      : "";
}

const mapValues = <K extends string, A, B>(o: Record<K, A>, f: (a: A) => B): Record<K, B> =>
  Object.fromEntries(Object.entries(o).map(([k, a]) => [k, f(a as A)])) as Record<K, B>;

function destroyCy(): void {
  cy?.destroy();
  cy = undefined;
}

const cyStyle: cytoscape.StylesheetJson = [
  {
    selector: "node",
    style: {
      label: "data(label)",
      "text-wrap": "wrap",
      "font-size": 9,
      "text-valign": "bottom",
      "text-margin-y": 3,
      "min-zoomed-font-size": 6,
      color: "#1f2d3d",
      "background-color": NODE,
      width: 16,
      height: 16,
    },
  },
  {
    selector: "node.hub",
    style: { shape: "diamond", "background-color": COLOURS.hub, width: 24, height: 24 },
  },
  {
    selector: "edge",
    style: {
      width: 2,
      label: "data(label)",
      "font-size": 7,
      "min-zoomed-font-size": 6,
      "curve-style": "straight",
      "text-rotation": "autorotate",
      "text-background-color": "#fff",
      "text-background-opacity": 0.85,
      "text-background-padding": "1px",
    },
  },
  ...(Object.keys(COLOURS) as PathKind[]).map((k) => ({
    selector: `edge.${k}`,
    style: { "line-color": COLOURS[k], "line-style": DASH[k] } as cytoscape.Css.Edge,
  })),
  // Curved, so a relayed pair is not drawn across the hub it goes through.
  {
    selector: "edge.hub",
    style: {
      "curve-style": "unbundled-bezier",
      "control-point-distances": [40],
      "control-point-weights": [0.5],
    } as cytoscape.Css.Edge,
  },
  { selector: ":selected", style: { "overlay-opacity": 0.25, "overlay-color": "#333" } },
];

async function drawCy(
  v: ViewData,
  shown: Edge[],
  pos: Map<string, cytoscape.Position>,
  radius: number,
): Promise<string[]> {
  if (!cy) {
    const { default: make } = await (cyModule ??= import("cytoscape"));
    // A big view came while it loaded: drawn by then, on the canvas.
    if (canvas) return canvas.ids();
    if (!cy) {
      cy = make({
        container: $("graph"),
        wheelSensitivity: 0.3,
        // A small mesh is not blown up to fill the box: labels stay readable.
        maxZoom: 1.6,
        style: cyStyle,
      });
      cy.on("render", () => painted(cy?.nodes().length ?? 0));
      cy.on("tap mouseover", "edge", (e) => pick(e.target.id()));
    }
  }
  const g = cy;
  const ids = new Set(v.peers.map((p) => p.id));
  const shownIds = new Set(shown.map((e) => `e${e.key}`));
  const before = g.nodes().length;
  let nodesChanged = false;
  // New elements go in with one add (one per element costs a style pass each).
  const added: cytoscape.ElementDefinition[] = [];
  g.batch(() => {
    const goneNodes = g.nodes().filter((n) => !ids.has(n.id()));
    if (goneNodes.nonempty()) nodesChanged = true;
    g.remove(goneNodes);
    g.remove(g.edges().filter((x) => !shownIds.has(x.id())));
    for (const p of v.peers) {
      const data = { id: p.id, label: nodeLabel(p).join("\n") };
      const n = g.getElementById(p.id);
      if (n.empty()) {
        added.push({
          group: "nodes",
          data,
          classes: p.role,
          position: { ...(pos.get(p.id) ?? { x: 0, y: 0 }) },
        });
        nodesChanged = true;
      } else {
        if (n.data("label") !== data.label) n.data(data);
        if (!n.hasClass(p.role)) n.classes(p.role);
      }
    }
    for (const e of shown) {
      const id = `e${e.key}`;
      const x = g.getElementById(id);
      if (x.empty())
        added.push({
          group: "edges",
          data: { id, source: e.a, target: e.b, label: e.label },
          classes: e.path,
        });
      else {
        if (x.data("label") !== e.label) x.data("label", e.label);
        if (!x.hasClass(e.path)) x.classes(e.path);
      }
    }
    if (added.length) g.add(added);
  });
  if (nodesChanged) {
    // Who joined or left moves the others (their ring may have changed).
    if (before > 0)
      g.batch(() => g.nodes().forEach((n) => void n.position({ ...(pos.get(n.id()) ?? { x: 0, y: 0 }) })));
    fit(g, radius);
  }
  return g.nodes().map((n) => n.id());
}

/**
 * Hubs on a small circle in the middle, the others on rings around it
 * (what cytoscape's concentric layout draws), placed by arithmetic: the
 * layout and a fit would measure every label first, seconds for 1 000 peers.
 * Returns the positions and the radius of the outer ring.
 */
function rings(v: ViewData): { pos: Map<string, cytoscape.Position>; radius: number } {
  const hubs = v.peers.filter((p) => p.role === "hub").map((p) => p.id);
  const others = v.peers.filter((p) => p.role !== "hub").map((p) => p.id);
  const pos = new Map<string, cytoscape.Position>();
  const gap = v.peers.length > BIG ? 30 : 120;
  const ring = (list: string[], r0: number): number => {
    let r = r0;
    for (let i = 0; i < list.length; r += gap) {
      // As many as fit on this ring one gap apart (one, in the middle, if r is 0).
      const n = Math.min(r === 0 ? 1 : Math.max(1, Math.floor((2 * Math.PI * r) / gap)), list.length - i);
      for (let k = 0; k < n; k++, i++) {
        const a = (2 * Math.PI * k) / n - Math.PI / 2;
        pos.set(list[i] ?? "", { x: r * Math.cos(a), y: r * Math.sin(a) });
      }
    }
    return r;
  };
  const outer = ring(others, ring(hubs, hubs.length > 1 ? gap : 0));
  return { pos, radius: Math.max(gap, outer) };
}

/** Centres the rings in the box, as large as fits (up to maxZoom). */
function fit(g: cytoscape.Core, radius: number): void {
  const box = $("graph");
  const zoom = Math.min(1.6, box.clientWidth / (2 * radius), box.clientHeight / (2 * radius));
  g.viewport({ zoom, pan: { x: box.clientWidth / 2, y: box.clientHeight / 2 } });
}

// ---- table and detail ------------------------------------------------------

const COLUMNS: [SortKey, string][] = [
  ["fromName", "from"],
  ["toName", "to"],
  ["path", "path"],
  ["hubName", "hub"],
  ["family", "family"],
  ["latencyMs", "latency ms"],
  ["handshakeAgeS", "handshake s ago"],
  ["pskEpoch", "PSK epoch"],
  ["reason", "why not direct"],
];

function drawTable(): void {
  const head = $("pairs-head");
  if (!head.firstChild) {
    const tr = el("tr");
    for (const [key, text] of COLUMNS) {
      const th = el("th", text);
      th.dataset.key = key;
      th.addEventListener("click", () => {
        sort = { key, down: sort.key === key ? !sort.down : false };
        drawTable();
      });
      tr.append(th);
    }
    head.append(tr);
  }
  for (const th of head.querySelectorAll("th"))
    th.dataset.sorted = th.dataset.key === sort.key ? (sort.down ? "down" : "up") : "";
  const filter = ($("filter") as HTMLInputElement).value.trim().toLowerCase();
  const picked = filter
    ? rows.filter((r) => r.fromName.toLowerCase().includes(filter) || r.toName.toLowerCase().includes(filter))
    : rows.slice();
  const sorted = sortRows(picked, sort.key, sort.down);
  const body = $("pairs-body");
  const frag = document.createDocumentFragment();
  for (const r of sorted.slice(0, MAX_ROWS)) {
    const tr = el("tr", "", `path-${r.path}`);
    tr.dataset.from = r.fromName;
    tr.dataset.to = r.toName;
    tr.dataset.path = r.path;
    tr.dataset.hub = r.hubName;
    for (const v of [
      r.fromName,
      r.toName,
      r.path,
      r.hubName,
      r.family,
      r.latencyMs === null ? "" : r.latencyMs.toFixed(2),
      r.handshakeAgeS === null ? "" : String(r.handshakeAgeS),
      r.pskEpoch === null ? "" : String(r.pskEpoch),
      r.reason,
    ])
      tr.append(el("td", v));
    tr.addEventListener("mouseenter", () => {
      const [a, b] = r.from < r.to ? [r.from, r.to] : [r.to, r.from];
      selected = `e${a}-${b}`;
      drawDetail();
    });
    frag.append(tr);
  }
  body.replaceChildren(frag);
  $("rows-note").textContent =
    sorted.length > MAX_ROWS ? `showing ${MAX_ROWS} of ${sorted.length} rows: filter by name` : "";
}

function drawDetail(): void {
  const box = $("detail");
  const e = selected ? edges.get(selected.slice(1)) : undefined;
  canvas?.highlight(e && selected);
  if (!e) {
    box.replaceChildren(el("p", "hover or select a pair to see how it is connected"));
    return;
  }
  const name = (id: string) => view?.peers.find((p) => p.id === id)?.name ?? id;
  const why = whyNot(e);
  box.replaceChildren(
    el("h3", `${name(e.a)} ↔ ${name(e.b)}: ${e.path}`),
    ...(why.length ? why.map((w) => el("p", w, "why")) : [el("p", "direct on both ends")]),
  );
}

// ---- live stream -----------------------------------------------------------

async function follow(): Promise<void> {
  for (;;) {
    try {
      performance.mark("stream-request");
      const r = await api("/view/events");
      performance.mark("stream-open");
      const reader = r.body?.pipeThrough(new TextDecoderStream()).getReader();
      if (!reader) throw new Error("no stream");
      setState("live", "live");
      await load();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i: number;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          // A heartbeat (every 15 s) re-reads too: a path report taken by another
          // PostgreSQL replica wakes no stream here (view-feed.ts).
          if (frame.includes("event: changed") || frame.startsWith(": heartbeat")) scheduleLoad();
        }
      }
    } catch (e) {
      if ((e as Error).message.startsWith("refused")) return;
    }
    setState("reconnecting", "reconnecting…");
    await new Promise((r) => setTimeout(r, RETRY_MS));
  }
}

// ---- start -----------------------------------------------------------------

function showLogin(message = ""): void {
  $("login").hidden = false;
  $("view").hidden = true;
  $("login-message").textContent = message;
  setState("login", "signed out");
}

function start(): void {
  $("login").hidden = true;
  $("view").hidden = false;
  setState("connecting", "connecting…");
  void follow();
}

$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  performance.mark("submit");
  net = ($("net") as HTMLInputElement).value.trim();
  token = ($("token") as HTMLInputElement).value.trim();
  ($("token") as HTMLInputElement).value = "";
  sessionStorage.setItem("scope-view-net", net);
  sessionStorage.setItem("scope-view-token", token);
  location.hash = encodeURIComponent(net);
  start();
});
$("filter").addEventListener("input", () => drawTable());

net = decodeURIComponent(location.hash.slice(1)) || sessionStorage.getItem("scope-view-net") || "";
token = sessionStorage.getItem("scope-view-token") ?? "";
($("net") as HTMLInputElement).value = net;
if (net && token) start();
else showLogin();
