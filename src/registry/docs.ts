/**
 * Generates the reference part of docs/protocol.md from the zod schemas in
 * src/core/protocol.ts, so the document cannot drift from the code: a unit
 * test fails when the file differs from what this produces.
 *
 *   node dist/src/registry/docs.js          rewrite docs/protocol.md in place
 *   node dist/src/registry/docs.js --check  exit 1 if it is out of date
 */
import { readFileSync, realpathSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import * as P from "../core/protocol.js";

export const BEGIN = "<!-- BEGIN GENERATED: node dist/src/registry/docs.js -->";
export const END = "<!-- END GENERATED -->";

type Auth = "none" | "admin" | "member" | "admin or member" | "join proof" | "admin or viewer";

interface Endpoint {
  method: string;
  path: string;
  auth: Auth;
  request?: keyof typeof SCHEMAS;
  response: string;
  errors: string;
  what: string;
}

/** Every schema that appears on the wire, by the name the document uses. */
export const SCHEMAS = {
  NetworkInput: P.NetworkInput,
  Network: P.Network,
  NetworkList: P.NetworkList,
  TokenInput: P.TokenInput,
  PeerAdminUpdate: P.PeerAdminUpdate,
  TokenCreated: P.TokenCreated,
  JoinRequest: P.JoinRequest,
  JoinResponse: P.JoinResponse,
  Peer: P.Peer,
  PeerList: P.PeerList,
  PeerUpdate: P.PeerUpdate,
  PostMessage: P.PostMessage,
  MessageAccepted: P.MessageAccepted,
  Event: P.Event,
  StreamControl: P.StreamControl,
  ErrorBody: P.ErrorBody,
  PathReport: P.PathReport,
  PathList: P.PathList,
  ViewData: P.ViewData,
  ViewerTokenInput: P.ViewerTokenInput,
  ViewerTokenCreated: P.ViewerTokenCreated,
} as const;

const net = "/v1/networks/:net";
export const ENDPOINTS: Endpoint[] = [
  {
    method: "GET",
    path: "/healthz",
    auth: "none",
    response: '`{"ok":true}`',
    errors: "—",
    what: "Liveness; reads the store.",
  },
  {
    method: "GET",
    path: "/metrics",
    auth: "none",
    response: "Prometheus text",
    errors: "—",
    what: "Counters and gauges; only on `metrics_listen` (default 127.0.0.1:9470), not on the API port.",
  },
  {
    method: "GET",
    path: "/v1/networks",
    auth: "admin",
    response: "NetworkList",
    errors: "401",
    what: "All networks.",
  },
  {
    method: "POST",
    path: "/v1/networks",
    auth: "admin",
    request: "NetworkInput",
    response: "201 Network",
    errors: "400 401 409 413 415",
    what: "Create a network (IPv4 /8–/30, optional IPv6 ≤ /64).",
  },
  {
    method: "GET",
    path: net,
    auth: "admin",
    response: "Network",
    errors: "400 401 404",
    what: "One network.",
  },
  {
    method: "POST",
    path: `${net}/tokens`,
    auth: "admin",
    request: "TokenInput",
    response: "201 TokenCreated",
    errors: "400 401 404 413 415",
    what: "Create a join token (role edge or hub); the token text is shown only here.",
  },
  {
    method: "PATCH",
    path: `${net}/peers/:peer`,
    auth: "admin",
    request: "PeerAdminUpdate",
    response: "Peer",
    errors: "400 401 404 413 415",
    what: "Set a peer's role (hub or edge): emits peerUpdate. A member's own role claim is ignored.",
  },
  {
    method: "DELETE",
    path: `${net}/peers/:peer`,
    auth: "admin",
    response: "204",
    errors: "400 401 404",
    what: "Remove a peer: emits peerLeave (reason removed), frees its address, ends its streams.",
  },
  {
    method: "POST",
    path: `${net}/join`,
    auth: "join proof",
    request: "JoinRequest",
    response: "JoinResponse",
    errors:
      "400 401(unauthorized, replay) 403(forbidden, token_invalid) 404 409(conflict, address_exhausted) 413 415",
    what: "Join, or re-join with the same identity key (same id and address, no token use).",
  },
  {
    method: "GET",
    path: `${net}/peers`,
    auth: "admin or member",
    response: "PeerList",
    errors: "400 401 404",
    what: "Every peer of the network.",
  },
  {
    method: "PUT",
    path: `${net}/peers/self`,
    auth: "member",
    request: "PeerUpdate",
    response: "Peer",
    errors: "400 401 413 415",
    what: "Change own ports, candidates, NAT facts, kex keys, hub (tree: attachedTo): emits peerUpdate.",
  },
  {
    method: "DELETE",
    path: `${net}/peers/self`,
    auth: "member",
    response: "204",
    errors: "400 401",
    what: "Leave: emits peerLeave (reason left), frees the address.",
  },
  {
    method: "POST",
    path: `${net}/messages`,
    auth: "member",
    request: "PostMessage",
    response: "202 MessageAccepted",
    errors: "400 401 403 404 413 415",
    what: "Relay peerConn, peerReport or kex (kex needs `to`).",
  },
  {
    method: "GET",
    path: `${net}/events`,
    auth: "member",
    response: "text/event-stream of Event",
    errors: "400 401",
    what: "The event stream; `Last-Event-ID` header or `?after=` resumes.",
  },
  {
    method: "PUT",
    path: `${net}/paths`,
    auth: "member",
    request: "PathReport",
    response: "204",
    errors: "400 401 413 415 429",
    what: "Report this member's view of its peers (the changed pairs); the latest per pair is kept.",
  },
  {
    method: "POST",
    path: `${net}/viewer-tokens`,
    auth: "admin",
    request: "ViewerTokenInput",
    response: "201 ViewerTokenCreated",
    errors: "400 401 404 413 415",
    what: "Create a read-only token for the web view of the network; shown only here.",
  },
  {
    method: "GET",
    path: `${net}/view`,
    auth: "admin or viewer",
    response: "ViewData",
    errors: "400 401 404",
    what: "What the web view draws: peers without keys, and every stored path view.",
  },
  {
    method: "GET",
    path: `${net}/paths`,
    auth: "admin or viewer",
    response: "PathList",
    errors: "400 401 404",
    what: "Every stored path view (`scope peer list --json` adds them to each peer).",
  },
  {
    method: "GET",
    path: `${net}/view/events`,
    auth: "admin or viewer",
    response: "text/event-stream of `changed` wake-ups",
    errors: "400 401 404 429",
    what: "Wakes the web view when members or paths change; carries no data.",
  },
  {
    method: "GET",
    path: "/ui/",
    auth: "none",
    response: "the web view's page",
    errors: "404",
    what: "Static page (strict CSP); it asks for a token and sends it only in an Authorization header.",
  },
];

const code = (s: string) => "`" + s + "`";

function endpointTable(): string {
  const rows = ENDPOINTS.map(
    (e) =>
      `| ${e.method} | ${code(e.path)} | ${e.auth} | ${e.request ?? "—"} | ${e.response} | ${e.errors} | ${e.what} |`,
  );
  return [
    "| method | path | auth | request | response | errors | what |",
    "|---|---|---|---|---|---|---|",
    ...rows,
  ].join("\n");
}

function schemaSection(name: string, schema: z.ZodType): string {
  // Requests are documented as the sender writes them (defaults optional), records as the registry returns them.
  const io =
    name.endsWith("Input") ||
    name === "JoinRequest" ||
    name === "PeerUpdate" ||
    name === "PostMessage" ||
    name === "PathReport"
      ? "input"
      : "output";
  const json = JSON.stringify(z.toJSONSchema(schema, { io, unrepresentable: "any" }), null, 2);
  return `### ${name}\n\n\`\`\`json\n${json}\n\`\`\``;
}

export function generatedSection(): string {
  const kinds = P.MESSAGE_KINDS.map(
    (k) =>
      `| ${code(P.messageType(k))} | ${(P.MEMBER_MESSAGE_KINDS as readonly string[]).includes(k) ? "member (POST messages)" : "registry"} |`,
  );
  return [
    BEGIN,
    "",
    "## Endpoints",
    "",
    endpointTable(),
    "",
    "## Message types",
    "",
    "| type | sent by |",
    "|---|---|",
    ...kinds,
    "",
    `Bodies above ${P.MAX_BODY_BYTES} bytes are refused with 413. Signature headers: ${Object.values(P.SIGNATURE_HEADERS).map(code).join(", ")}; accepted clock skew ±${P.SIGNATURE_WINDOW_MS / 1000} s.`,
    "",
    "## Schemas (JSON Schema, generated from src/core/protocol.ts)",
    "",
    ...Object.entries(SCHEMAS).flatMap(([name, s]) => [schemaSection(name, s), ""]),
    END,
  ].join("\n");
}

/** The document with its generated part replaced. */
export function render(doc: string): string {
  const start = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (start < 0 || end < start) throw new Error("docs/protocol.md lacks the generated-section markers");
  return doc.slice(0, start) + generatedSection() + doc.slice(end + END.length);
}

const invokedDirectly = (() => {
  try {
    return realpathSync(process.argv[1] ?? "") === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
})();
if (invokedDirectly) {
  const file = fileURLToPath(new URL("../../../docs/protocol.md", import.meta.url));
  const doc = readFileSync(file, "utf8");
  const next = render(doc);
  if (process.argv.includes("--check")) {
    if (next !== doc) {
      process.stderr.write("docs/protocol.md is out of date: run node dist/src/registry/docs.js\n");
      process.exitCode = 1;
    }
  } else if (next !== doc) {
    writeFileSync(file, next);
  }
}
