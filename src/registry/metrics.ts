/**
 * Counters for /metrics, rendered in the Prometheus text format (0.0.4).
 * Gauges that the store or the hub already know (peers, subscribers) are
 * passed in at scrape time instead of being tracked twice.
 */
export class Metrics {
  eventsEmitted = 0;
  rejectedSignatures = 0;
  reflectorReplies = 0;
  reflectorDropped = 0;
  private readonly requests = new Map<string, number>();

  countRequest(status: number): void {
    const cls = `${Math.floor(status / 100)}xx`;
    this.requests.set(cls, (this.requests.get(cls) ?? 0) + 1);
  }

  render(gauges: { peers: Map<string, number>; subscribers: number }): string {
    const out: string[] = [];
    const metric = (name: string, type: string, help: string, rows: [string, number][]) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of rows) out.push(`${name}${labels} ${v}`);
    };
    metric(
      "scope_registry_peers",
      "gauge",
      "Peers per network.",
      [...gauges.peers].map(([net, n]) => [`{network="${net}"}`, n]),
    );
    metric("scope_registry_events_emitted_total", "counter", "Events committed and fanned out.", [
      ["", this.eventsEmitted],
    ]);
    metric("scope_registry_sse_subscribers", "gauge", "Open event streams.", [["", gauges.subscribers]]);
    metric(
      "scope_registry_http_requests_total",
      "counter",
      "HTTP requests by status class.",
      [...this.requests].sort().map(([cls, n]) => [`{class="${cls}"}`, n]),
    );
    metric(
      "scope_registry_rejected_signatures_total",
      "counter",
      "Requests refused for a missing, bad or replayed signature.",
      [["", this.rejectedSignatures]],
    );
    metric("scope_registry_reflector_replies_total", "counter", "UDP reflector replies sent.", [
      ["", this.reflectorReplies],
    ]);
    metric(
      "scope_registry_reflector_dropped_total",
      "counter",
      "UDP datagrams dropped: malformed or rate-limited.",
      [["", this.reflectorDropped]],
    );
    return out.join("\n") + "\n";
  }
}
