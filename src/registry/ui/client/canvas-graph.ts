/**
 * The graph of a big mesh (more than BIG peers, app.ts), drawn on one
 * plain <canvas> by this file: cytoscape's first paint of 1 000 peers and
 * 3 000 pairs took over a second (a style pass and a bounding box per
 * element); here a frame is one stroke per kind of path and one fill per
 * kind of peer, a few milliseconds. Positions come from app.ts (rings, by
 * arithmetic). What it offers is what a big mesh needs: pan (drag), zoom
 * (wheel, about the pointer), hover or tap of an edge (the nearest within a
 * few pixels), and peer labels once zoomed in enough to read them. Labels
 * are drawn with fillText: nothing from the registry is parsed as markup.
 */
import type { PathKind } from "../../../core/protocol.js";

export interface GraphNode {
  id: string;
  x: number;
  y: number;
  hub: boolean;
  /** Lines under the node: name, address, NAT kind. */
  label: string[];
}

export interface GraphEdge {
  id: string;
  a: string;
  b: string;
  path: PathKind;
}

export interface Look {
  colours: Record<PathKind, string>;
  /** Dash pattern in screen pixels per path; empty for solid. */
  dashes: Record<PathKind, number[]>;
  node: string;
  hub: string;
}

/** Node radius and label size in graph units (cytoscape's 16 px nodes, 9 px labels, in app.ts). */
const R = 8;
const HUB_R = 12;
const FONT = 9;
/** Labels are drawn once they would be at least this many screen pixels high. */
const MIN_FONT_PX = 6;
/** An edge within this many screen pixels of the pointer is the hovered one. */
const HIT_PX = 4;
const MAX_ZOOM = 4;
const MIN_ZOOM = 0.05;

export class CanvasGraph {
  private readonly canvas = document.createElement("canvas");
  private readonly ctx: CanvasRenderingContext2D;
  private nodes: GraphNode[] = [];
  private byId = new Map<string, GraphNode>();
  private edges: GraphEdge[] = [];
  private zoom = 1;
  private radius = 1;
  private pan = { x: 0, y: 0 };
  private width = 0;
  private height = 0;
  private frame: number | undefined;
  private highlighted: string | undefined;
  private drag: { x: number; y: number; moved: boolean } | undefined;
  private readonly resize: ResizeObserver;

  /**
   * onEdge: an edge was hovered or tapped (its id). onPaint: a frame
   * showing `nodes` peers has been painted (called at the start of the next
   * frame, so the drawn one is on the screen); drawing it took `ms`.
   */
  constructor(
    private readonly box: HTMLElement,
    private readonly look: Look,
    private readonly onEdge: (id: string) => void,
    private readonly onPaint: (nodes: number, ms: number) => void,
  ) {
    const ctx = this.canvas.getContext("2d", { alpha: false });
    if (!ctx) throw new Error("no 2d canvas");
    this.ctx = ctx;
    box.append(this.canvas);
    this.measure();
    this.resize = new ResizeObserver(() => {
      const unfitted = this.width === 0 || this.height === 0;
      if (!this.measure()) return;
      // Set while the box had no size (hidden): fitted now that it has one.
      if (unfitted) this.fit();
      this.redraw();
    });
    this.resize.observe(box);
    this.canvas.addEventListener("pointerdown", (e) => {
      this.drag = { x: e.clientX, y: e.clientY, moved: false };
      this.canvas.setPointerCapture(e.pointerId);
    });
    this.canvas.addEventListener("pointermove", (e) => {
      const d = this.drag;
      if (d && (d.moved || Math.abs(e.clientX - d.x) + Math.abs(e.clientY - d.y) > 3)) {
        this.pan.x += e.clientX - d.x;
        this.pan.y += e.clientY - d.y;
        this.drag = { x: e.clientX, y: e.clientY, moved: true };
        this.redraw();
      } else if (!d) this.hover(e);
    });
    this.canvas.addEventListener("pointerup", (e) => {
      if (this.drag && !this.drag.moved) this.hover(e);
      this.drag = undefined;
    });
    this.canvas.addEventListener(
      "wheel",
      (e) => {
        e.preventDefault();
        const [px, py] = this.local(e);
        const zoom = clamp(this.zoom * Math.exp(-e.deltaY * 0.002), MIN_ZOOM, MAX_ZOOM);
        // The graph point under the pointer stays under it.
        this.pan.x = px - ((px - this.pan.x) * zoom) / this.zoom;
        this.pan.y = py - ((py - this.pan.y) * zoom) / this.zoom;
        this.zoom = zoom;
        this.redraw();
      },
      { passive: false },
    );
  }

  /** Replaces what is drawn; refit centres a graph of this radius in the box. */
  set(nodes: GraphNode[], edges: GraphEdge[], radius: number, refit: boolean): void {
    this.nodes = nodes;
    this.byId = new Map(nodes.map((n) => [n.id, n]));
    this.edges = edges.filter((e) => this.byId.has(e.a) && this.byId.has(e.b));
    this.radius = radius;
    if (refit) this.fit();
    this.redraw();
  }

  /** Centres the graph in the box, as large as fits (up to 1.6, as cytoscape's maxZoom in app.ts). */
  private fit(): void {
    const r = this.radius;
    this.zoom = clamp(Math.min(this.width / (2 * r), this.height / (2 * r)), MIN_ZOOM, 1.6);
    this.pan = { x: this.width / 2, y: this.height / 2 };
  }

  /** The edge drawn highlighted (hovered or selected), if it is drawn. */
  highlight(id: string | undefined): void {
    if (id === this.highlighted) return;
    this.highlighted = id;
    this.redraw();
  }

  ids(): string[] {
    return this.nodes.map((n) => n.id);
  }

  destroy(): void {
    this.resize.disconnect();
    if (this.frame !== undefined) cancelAnimationFrame(this.frame);
    this.canvas.remove();
  }

  private redraw(): void {
    if (this.frame !== undefined) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = undefined;
      const t0 = performance.now();
      this.paint();
      const ms = performance.now() - t0;
      const n = this.nodes.length;
      requestAnimationFrame(() => this.onPaint(n, ms));
    });
  }

  /** Sizes the backing store to the box (device pixels); whether it changed. */
  private measure(): boolean {
    const w = this.box.clientWidth;
    const h = this.box.clientHeight;
    if (w === this.width && h === this.height) return false;
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.max(1, Math.round(w * dpr));
    this.canvas.height = Math.max(1, Math.round(h * dpr));
    this.width = w;
    this.height = h;
    return true;
  }

  private local(e: MouseEvent): [number, number] {
    const r = this.canvas.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  }

  private hover(e: MouseEvent): void {
    const [px, py] = this.local(e);
    const x = (px - this.pan.x) / this.zoom;
    const y = (py - this.pan.y) / this.zoom;
    let best: string | undefined;
    let bestD = HIT_PX / this.zoom;
    for (const ed of this.edges) {
      const a = this.byId.get(ed.a);
      const b = this.byId.get(ed.b);
      if (!a || !b) continue;
      const d = segmentDistance(x, y, a, b);
      if (d < bestD) [best, bestD] = [ed.id, d];
    }
    if (best !== undefined) this.onEdge(best);
  }

  private paint(): void {
    const { ctx, zoom, look } = this;
    const dpr = this.canvas.width / Math.max(1, this.width);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.setTransform(dpr * zoom, 0, 0, dpr * zoom, dpr * this.pan.x, dpr * this.pan.y);
    // Edges: one path per kind, one pixel wide whatever the zoom.
    ctx.lineWidth = 1 / zoom;
    for (const kind of Object.keys(look.colours) as PathKind[]) {
      ctx.beginPath();
      for (const e of this.edges) if (e.path === kind) this.line(e);
      ctx.strokeStyle = look.colours[kind];
      ctx.setLineDash(look.dashes[kind].map((d) => d / zoom));
      ctx.stroke();
    }
    ctx.setLineDash([]);
    const hl = this.edges.find((e) => e.id === this.highlighted);
    if (hl) {
      ctx.beginPath();
      this.line(hl);
      ctx.lineWidth = 4 / zoom;
      ctx.strokeStyle = look.colours[hl.path];
      ctx.stroke();
    }
    // Peers: one path of circles, one of diamonds (hubs).
    ctx.beginPath();
    for (const n of this.nodes)
      if (!n.hub) {
        ctx.moveTo(n.x + R, n.y);
        ctx.arc(n.x, n.y, R, 0, 2 * Math.PI);
      }
    ctx.fillStyle = look.node;
    ctx.fill();
    ctx.beginPath();
    for (const n of this.nodes)
      if (n.hub) {
        ctx.moveTo(n.x, n.y - HUB_R);
        ctx.lineTo(n.x + HUB_R, n.y);
        ctx.lineTo(n.x, n.y + HUB_R);
        ctx.lineTo(n.x - HUB_R, n.y);
        ctx.closePath();
      }
    ctx.fillStyle = look.hub;
    ctx.fill();
    if (FONT * zoom >= MIN_FONT_PX) this.labels();
  }

  private line(e: GraphEdge): void {
    const a = this.byId.get(e.a);
    const b = this.byId.get(e.b);
    if (!a || !b) return;
    this.ctx.moveTo(a.x, a.y);
    this.ctx.lineTo(b.x, b.y);
  }

  /** Labels of the peers in view only (zoomed in, most are not). */
  private labels(): void {
    const { ctx, zoom } = this;
    const x0 = -this.pan.x / zoom;
    const y0 = -this.pan.y / zoom;
    const x1 = x0 + this.width / zoom;
    const y1 = y0 + this.height / zoom;
    ctx.font = `${FONT}px system-ui, sans-serif`;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    ctx.fillStyle = "#1f2d3d";
    for (const n of this.nodes) {
      if (n.x < x0 - 60 || n.x > x1 + 60 || n.y < y0 - 40 || n.y > y1) continue;
      const top = n.y + (n.hub ? HUB_R : R) + 3;
      n.label.forEach((line, i) => ctx.fillText(line, n.x, top + i * (FONT + 1)));
    }
  }
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/** Distance from (x, y) to the segment a–b. */
function segmentDistance(x: number, y: number, a: GraphNode, b: GraphNode): number {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const len = dx * dx + dy * dy;
  const t = len === 0 ? 0 : clamp(((x - a.x) * dx + (y - a.y) * dy) / len, 0, 1);
  return Math.hypot(x - (a.x + t * dx), y - (a.y + t * dy));
}
