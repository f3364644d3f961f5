/**
 * The registry protocol: one zod schema per record and message, the types
 * derived from them, and the same schemas exported as JSON Schema into
 * docs/protocol.md. Everything that crosses the wire (HTTP bodies, SSE
 * events) is validated against these at the edge of the program.
 *
 * Input types (what a peer submits) are kept apart from stored records
 * (what the registry keeps and returns), as innernet does.
 */
import { z } from "zod";
import { isNetworkName, NETWORK_NAME_RE, NETWORK_NAME_RULE } from "./names.js";

export const MESSAGE_PREFIX = "cc.ltgc.scope:";
export const API_PREFIX = "/v1";
/** Request bodies above this are refused with 413 before parsing. */
export const MAX_BODY_BYTES = 64 * 1024;

// ---- scalars -------------------------------------------------------------

/** Network names end up in file names, unit instances and interface names: src/core/names.ts. */
export const NetworkName = z
  .string()
  .regex(NETWORK_NAME_RE, NETWORK_NAME_RULE)
  .refine(isNetworkName, NETWORK_NAME_RULE);
export const PeerName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "1-63 of A-Z a-z 0-9 . _ -");
/** 32-byte key, standard base64 (WireGuard and Ed25519 public keys). */
export const Key32 = z.base64().length(44);
/** Peer id: first 16 hex digits of SHA-256 over the raw Ed25519 identity key. */
export const PeerId = z.string().regex(/^[0-9a-f]{16}$/);
export const Port = z.number().int().min(1).max(65535);
export const IpAddress = z.union([z.ipv4(), z.ipv6()]);
export const EventId = z.number().int().nonnegative();

export const Endpoint = z.strictObject({ address: IpAddress, port: Port });
export type Endpoint = z.infer<typeof Endpoint>;

/**
 * Where a candidate came from. local: an address on the host; reflexive: the
 * registry reflector saw it (probe port, port of the WireGuard socket is a
 * guess); reported: another peer saw WireGuard traffic from it; configured:
 * the admin said so (e.g. a static public address of a hub).
 */
export const CandidateKind = z.enum(["local", "reflexive", "reported", "configured"]);
export const Candidate = Endpoint.extend({ kind: CandidateKind });
export type Candidate = z.infer<typeof Candidate>;

/** What a host knows about its own NAT, from `scope netcheck`. */
export const NatInfo = z.strictObject({
  /** none: a public address on the host; endpoint-dependent: symmetric NAT, cannot hole-punch. */
  mapping: z.enum(["none", "endpoint-independent", "endpoint-dependent", "unknown"]),
  /** Whether the NAT kept the source port of the reflector probe (a hint, never proof). */
  portPreserved: z.boolean().optional(),
  /** The host has a global IPv6 address that the reflector saw. */
  ipv6: z.boolean(),
});
export type NatInfo = z.infer<typeof NatInfo>;

export const PeerRole = z.enum(["edge", "hub"]);
export type PeerRole = z.infer<typeof PeerRole>;
export const Topology = z.enum(["mesh", "tree"]);

/** Public halves of the hybrid PQ key exchange (DESIGN §6); optional until PSK rotation lands. */
export const KexKeys = z.strictObject({
  x448: z.base64().length(76),
  mlkem768: z.base64().max(1600),
});

// ---- records -------------------------------------------------------------

export const NetworkInput = z.strictObject({
  name: NetworkName,
  cidr: z.cidrv4(),
  cidr6: z.cidrv6().optional(),
  topology: Topology.default("mesh"),
});
export type NetworkInput = z.input<typeof NetworkInput>;

export const Network = z.strictObject({
  name: NetworkName,
  cidr: z.cidrv4(),
  cidr6: z.cidrv6().optional(),
  topology: Topology,
  createdAt: z.number().int(),
});
export type Network = z.infer<typeof Network>;

/** What a peer submits about itself when it joins. */
export const PeerInput = z.strictObject({
  name: PeerName,
  identityKey: Key32,
  wgPublicKey: Key32,
  listenPort: Port,
  /** UDP port of the prober; probes are authenticated, see src/core/probe. */
  probePort: Port,
  candidates: z.array(Candidate).max(32),
  nat: NatInfo,
  /**
   * Ignored: a peer is a hub only because its join token or the admin says
   * so (DESIGN §3). Accepted so older members still validate.
   */
  role: PeerRole.optional(),
  kex: KexKeys.optional(),
});
export type PeerInput = z.input<typeof PeerInput>;

/** What a peer may change about itself later (migration, new ports). */
export const PeerUpdate = PeerInput.pick({
  listenPort: true,
  probePort: true,
  candidates: true,
  nat: true,
  kex: true,
})
  .partial()
  .extend({
    /**
     * topology = tree: the hub this edge routes through, so every hub knows
     * which hub carries the edge's address. A hub ignores a name that is no
     * hub; only the edge itself can say it, and it only steers its own address.
     */
    attachedTo: PeerId.optional(),
  });
export type PeerUpdate = z.infer<typeof PeerUpdate>;

/** The stored record the registry returns. */
export const Peer = z.strictObject({
  id: PeerId,
  network: NetworkName,
  name: PeerName,
  identityKey: Key32,
  wgPublicKey: Key32,
  listenPort: Port,
  probePort: Port,
  candidates: z.array(Candidate),
  nat: NatInfo,
  role: PeerRole,
  kex: KexKeys.optional(),
  /** tree: the hub this edge announced it routes through (PeerUpdate.attachedTo). */
  attachedTo: PeerId.optional(),
  /** Tunnel address from IPAM; stable for the life of the peer. */
  address: z.ipv4(),
  address6: z.ipv6().optional(),
  joinedAt: z.number().int(),
  updatedAt: z.number().int(),
});
export type Peer = z.infer<typeof Peer>;

export const TokenInput = z.strictObject({
  uses: z.number().int().min(1).max(100_000).default(1),
  /** Seconds from now; at most a year. */
  expiresIn: z
    .number()
    .int()
    .min(1)
    .max(366 * 24 * 3600)
    .default(24 * 3600),
  /** The role a peer joining with this token gets: hubs are the admin's choice, never the member's. */
  role: PeerRole.default("edge"),
});
export type TokenInput = z.input<typeof TokenInput>;

export const TokenCreated = z.strictObject({
  id: z.string(),
  network: NetworkName,
  /** The secret. Shown once; the registry keeps only its hash. */
  token: z.string(),
  uses: z.number().int(),
  expiresAt: z.number().int(),
  role: PeerRole,
});
export type TokenCreated = z.infer<typeof TokenCreated>;

/** PATCH /v1/networks/:net/peers/:peer (admin): what the admin may change about a peer. */
export const PeerAdminUpdate = z.strictObject({ role: PeerRole });
export type PeerAdminUpdate = z.infer<typeof PeerAdminUpdate>;

// ---- join ----------------------------------------------------------------

/** POST /v1/networks/:net/join, signed with peer.identityKey (proof of possession). */
export const JoinRequest = z.strictObject({
  token: z.string().min(8).max(200),
  peer: PeerInput,
});
export type JoinRequest = z.input<typeof JoinRequest>;

export const JoinResponse = z.strictObject({
  self: Peer,
  network: Network,
  peers: z.array(Peer),
  /** Resume the event stream after this id to see everything that happened since the join. */
  lastEventId: EventId,
  /** Ed25519 key that signs reflector replies. */
  registryKey: Key32,
  /** UDP reflector ports: [same port as HTTP, second port for mapping tests]. */
  reflectorPorts: z.tuple([Port, Port]),
});
export type JoinResponse = z.infer<typeof JoinResponse>;

// ---- messages --------------------------------------------------------------

export const LeaveReason = z.enum(["left", "removed"]);

/** The newcomer's observation of, or from, another peer. */
export const PeerReportBody = z.strictObject({
  about: PeerId,
  /** The peer applied the subject to its WireGuard config (ordering matters, DESIGN §4). */
  applied: z.boolean().optional(),
  /** Where the subject's probes came from, as seen here. */
  probeEndpoint: Endpoint.optional(),
  /** Where the subject's WireGuard traffic came from, as seen by WireGuard here: its WG-port mapping. */
  wgEndpoint: Endpoint.optional(),
  latencyMs: z.number().nonnegative().max(60_000).optional(),
  path: z.enum(["direct", "hub", "pending"]).optional(),
});

export const KexBody = z.strictObject({
  epoch: z.number().int().nonnegative(),
  stage: z.enum(["request", "offer", "answer", "confirm"]),
  /** Opaque to the registry; end-to-end signed by the sender's identity key. */
  payload: z.base64().max(8192),
  signature: z.base64().length(88),
});

/** Message bodies by type. The registry emits the first three itself; members send the rest. */
export const MessageBodies = {
  peerJoin: Peer,
  peerLeave: z.strictObject({ peerId: PeerId, reason: LeaveReason }),
  peerUpdate: Peer,
  peerConn: z.strictObject({ peerId: PeerId }),
  peerReport: PeerReportBody,
  kex: KexBody,
} as const;

export type MessageKind = keyof typeof MessageBodies;
export const MESSAGE_KINDS = Object.keys(MessageBodies) as MessageKind[];
/** Kinds a member may POST; the others only the registry emits. */
export const MEMBER_MESSAGE_KINDS = [
  "peerConn",
  "peerReport",
  "kex",
] as const satisfies readonly MessageKind[];
export type MemberMessageKind = (typeof MEMBER_MESSAGE_KINDS)[number];

export const messageType = (kind: MessageKind): string => `${MESSAGE_PREFIX}${kind}`;

const eventOf = <K extends MessageKind>(kind: K) =>
  z.strictObject({
    id: EventId,
    type: z.literal(`${MESSAGE_PREFIX}${kind}` as `cc.ltgc.scope:${K}`),
    network: NetworkName,
    /** Sender peer id, or "registry" for events it emits. */
    from: z.union([PeerId, z.literal("registry")]),
    /** Directed messages (reports, kex) name their recipient; others go to every member. */
    to: PeerId.optional(),
    ts: z.number().int(),
    body: MessageBodies[kind],
  });

/** One SSE event (`id:` = Event.id, `data:` = JSON of Event). */
export const Event = z.discriminatedUnion("type", [
  eventOf("peerJoin"),
  eventOf("peerLeave"),
  eventOf("peerUpdate"),
  eventOf("peerConn"),
  eventOf("peerReport"),
  eventOf("kex"),
]);
export type Event = z.infer<typeof Event>;

const postOf = <K extends MemberMessageKind>(kind: K) =>
  z.strictObject({
    type: z.literal(`${MESSAGE_PREFIX}${kind}` as `cc.ltgc.scope:${K}`),
    to: PeerId.optional(),
    body: MessageBodies[kind],
  });

/** POST /v1/networks/:net/messages */
export const PostMessage = z.discriminatedUnion("type", [
  postOf("peerConn"),
  postOf("peerReport"),
  postOf("kex"),
]);
export type PostMessage = z.infer<typeof PostMessage>;

// ---- path reports and the web view (issue 16) ------------------------------

export const PathKind = z.enum(["direct", "hub", "pending", "none"]);
export type PathKind = z.infer<typeof PathKind>;

/** One daemon's view of one other peer: the `scope status` row, without keys or endpoints. */
export const PathView = z.strictObject({
  peer: PeerId,
  path: PathKind,
  /** The hub carrying the traffic while path is hub. */
  hub: PeerId.nullable(),
  family: z.enum(["ipv4", "ipv6"]).nullable(),
  latencyMs: z.number().nonnegative().max(60_000).nullable(),
  /** Seconds since the last WireGuard handshake, when the report was made. */
  handshakeAgeS: z
    .number()
    .int()
    .nonnegative()
    .max(10 * 366 * 86_400)
    .nullable(),
  pskEpoch: z.number().int().nonnegative().nullable(),
  /** Why the path is not direct (the daemon's words); null when direct. */
  reason: z.string().max(200).nullable(),
});
export type PathView = z.infer<typeof PathView>;

/**
 * PUT /v1/networks/:net/paths (member, signed): the pairs whose view changed
 * since the last report (a whole view at 1 000 peers would pass the body
 * limit). The registry keeps the latest view per (reporter, peer).
 */
export const PathReport = z.strictObject({ views: z.array(PathView).min(1).max(250) });
export type PathReport = z.infer<typeof PathReport>;

/** A stored view: who reported it and when (registry clock). */
export const PathRecord = PathView.extend({ from: PeerId, reportedAt: z.number().int() });
export type PathRecord = z.infer<typeof PathRecord>;

/** GET /v1/networks/:net/paths (admin or viewer) */
export const PathList = z.strictObject({ paths: z.array(PathRecord) });
export type PathList = z.infer<typeof PathList>;

/** A peer as the web view shows it: no keys, no candidates. */
export const ViewPeer = Peer.pick({ id: true, name: true, address: true, role: true }).extend({
  nat: NatInfo.shape.mapping,
});
export type ViewPeer = z.infer<typeof ViewPeer>;

/** GET /v1/networks/:net/view (admin or viewer): what the page draws. */
export const ViewData = z.strictObject({
  network: Network.pick({ name: true, cidr: true, topology: true }),
  peers: z.array(ViewPeer),
  paths: z.array(PathRecord),
  /** Registry time of this answer: handshake ages are reportedAt-relative. */
  now: z.number().int(),
});
export type ViewData = z.infer<typeof ViewData>;

/** POST /v1/networks/:net/viewer-tokens (admin): a read-only token for the web view of one network. */
export const ViewerTokenInput = TokenInput.pick({ expiresIn: true });
export type ViewerTokenInput = z.input<typeof ViewerTokenInput>;

export const ViewerTokenCreated = z.strictObject({
  id: z.string(),
  network: NetworkName,
  /** The secret. Shown once; the registry keeps only its hash. */
  token: z.string(),
  expiresAt: z.number().int(),
  viewer: z.literal(true),
});
export type ViewerTokenCreated = z.infer<typeof ViewerTokenCreated>;

// ---- response envelopes ------------------------------------------------------

/** GET /v1/networks */
export const NetworkList = z.strictObject({ networks: z.array(Network) });
export type NetworkList = z.infer<typeof NetworkList>;

/** GET /v1/networks/:net/peers */
export const PeerList = z.strictObject({ peers: z.array(Peer) });
export type PeerList = z.infer<typeof PeerList>;

/** POST /v1/networks/:net/messages: the id the message got in the event stream. */
export const MessageAccepted = z.strictObject({ id: EventId });
export type MessageAccepted = z.infer<typeof MessageAccepted>;

/**
 * Data of the two SSE control events, which are not stored and carry an
 * `event:` name: `ready` (replay done, live from here) and `resync` (the
 * resume point is older than the retention or unknown: re-read the peer
 * list, then carry on from lastEventId).
 */
export const StreamControl = z.strictObject({ lastEventId: EventId, reason: z.string().optional() });
export type StreamControl = z.infer<typeof StreamControl>;
export const STREAM_CONTROL_EVENTS = ["ready", "resync"] as const;

/** Every 4xx/5xx body. */
export const ErrorBody = z.strictObject({ error: z.string(), message: z.string() });
export type ErrorBody = z.infer<typeof ErrorBody>;

// ---- request signing -------------------------------------------------------

/**
 * Member requests carry the headers SIGNATURE_HEADERS names; the signature
 * is Ed25519 over canonicalRequest(). Both belong to the signing scheme and
 * live in src/crypto/signing.ts (crypto depends on nothing in src/core);
 * they are re-exported here because they are part of the wire protocol.
 * The registry accepts a timestamp within SIGNATURE_WINDOW_MS of its clock
 * and each nonce once.
 */
export { SIGNATURE_HEADERS } from "../crypto/signing.js";
export const SIGNATURE_WINDOW_MS = 60_000;
