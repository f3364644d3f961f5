// PSK rotation benchmark (issue 11, acceptance 6). Prints:
//
// 1. Per-operation costs of the hybrid exchange as Scope runs it (ML-KEM-768
//    from @noble/post-quantum; X448 and Ed25519 on OpenSSL through
//    node:crypto), with noble's pure-JS X448 and Ed25519 as the reference the
//    choice was made against (docs/security.md).
// 2. The CPU one daemon spends on its share of one rotation with 49 peers:
//    50 join engines in this process (src/core/engine, the daemon's reducer,
//    signatures and all), every kex message carried between them as the
//    registry would; process.cpuUsage() around each step() is charged to the
//    engine that ran it (median of --rounds rotations), next to its crypto
//    floor: this run's per-operation costs times the operations its roles
//    need, so the ratio is what the engine adds. Target: <= 150 ms per
//    daemon. Backend applies (one UAPI write per changed peer) and the
//    registry are not in this figure.
// 3. With --lab (root): the wall time for a 50-peer lab mesh (all 1 225
//    pairs) to rotate, from `scope psk rotate` on every host to every pair on
//    a new epoch on both sides. Target: <= 3 s on this 2-core machine.
//
//   npm run bench:psk                 # 1 and 2, ~10 s, no root
//   npm run bench:psk -- --lab        # and 3 (builds a 50-host lab: minutes)

import { loadavg } from "node:os";
import { createPrivateKey, randomBytes, sign, verify, createPublicKey } from "node:crypto";
import { parseArgs } from "node:util";
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { x448 } from "@noble/curves/ed448.js";
import { ed25519 } from "@noble/curves/ed25519.js";
import { createEngineState, step, type EngineEffect, type EngineState } from "../src/core/engine/index.js";
import { identityKeyer } from "../src/core/probe/mac.js";
import type { Event, JoinResponse, Peer } from "../src/core/protocol.js";
import { TIMER_PROFILES } from "../src/core/timers.js";
import { answerOffer, derive, finishOffer, makeOffer, x448Pair, x448Shared } from "../src/crypto/kex.js";
import { generateIdentity, generateWgKeyPair, type Identity } from "../src/crypto/keys.js";
import { textTable } from "../test/lab/checks.js";
import { makeRecord, NETWORK, relayedKex } from "../test/unit/helpers/kex-pair.js";

const args = parseArgs({
  options: {
    lab: { type: "boolean" },
    peers: { type: "string", default: "50" },
    reps: { type: "string", default: "200" },
    rounds: { type: "string", default: "3" },
  },
}).values;
const N = Number(args.peers);
const REPS = Number(args.reps);
const ROUNDS = Number(args.rounds);

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

const load = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");

/** Median ms per call of fn over reps calls, in 5 batches. */
function perOp(fn: () => unknown, reps = REPS): number {
  for (let i = 0; i < Math.min(20, reps); i++) fn();
  const batches: number[] = [];
  for (let b = 0; b < 5; b++) {
    const t = process.cpuUsage();
    for (let i = 0; i < reps / 5; i++) fn();
    const d = process.cpuUsage(t);
    batches.push((d.user + d.system) / 1000 / (reps / 5));
  }
  return batches.sort((a, b) => a - b)[2] as number;
}

/** Per-operation CPU ms, as Scope runs them (the crypto floor below is made of these). */
interface Costs {
  kemKeygen: number;
  encaps: number;
  decaps: number;
  x448Keygen: number;
  x448Dh: number;
  sign: number;
  verify: number;
  derive: number;
}

function operations(): Costs {
  const kem = ml_kem768.keygen();
  const enc = ml_kem768.encapsulate(kem.publicKey);
  const [p, q] = [x448Pair(randomBytes(56)), x448Pair(randomBytes(56))];
  const nobleX = x448.utils.randomSecretKey();
  const nobleXPub = x448.getPublicKey(x448.utils.randomSecretKey());
  const seed = randomBytes(32);
  const edKey = createPrivateKey({
    key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]),
    format: "der",
    type: "pkcs8",
  });
  const edPub = createPublicKey(edKey);
  const msg = randomBytes(200);
  const sig = sign(null, msg, edKey);
  const nobleSig = ed25519.sign(msg, seed);
  const noblePub = ed25519.getPublicKey(seed);
  const keys = { decapsulatorWg: randomBytes(32), encapsulatorWg: randomBytes(32) };
  const o = makeOffer(randomBytes);
  const a = answerOffer(randomBytes, keys, 1, o.x448Public, o.mlkemPublic);
  const exchange = {
    epoch: 1,
    offerX448: o.x448Public,
    offerMlkem: o.mlkemPublic,
    answerX448: a.x448Public,
    ciphertext: a.ciphertext,
  };
  const c: Costs = {
    kemKeygen: perOp(() => ml_kem768.keygen()),
    encaps: perOp(() => ml_kem768.encapsulate(kem.publicKey)),
    decaps: perOp(() => ml_kem768.decapsulate(enc.cipherText, kem.secretKey)),
    x448Keygen: perOp(() => x448Pair(randomBytes(56))),
    x448Dh: perOp(() => x448Shared(p.key, q.public)),
    sign: perOp(() => sign(null, msg, edKey)),
    verify: perOp(() => verify(null, msg, edPub, sig)),
    derive: perOp(() => derive(a.derived.psk, a.derived.psk, keys, exchange)),
  };
  const rows: [string, number][] = [
    ["ML-KEM-768 keygen (noble)", c.kemKeygen],
    ["ML-KEM-768 encaps (noble)", c.encaps],
    ["ML-KEM-768 decaps (noble)", c.decaps],
    ["X448 keygen (OpenSSL, raw key out)", c.x448Keygen],
    ["X448 DH (OpenSSL, with the peer key's import)", c.x448Dh],
    ["X448 DH (noble, reference)", perOp(() => x448.getSharedSecret(nobleX, nobleXPub), 50)],
    ["Ed25519 sign (OpenSSL)", c.sign],
    ["Ed25519 verify (OpenSSL)", c.verify],
    ["Ed25519 verify (noble, reference)", perOp(() => ed25519.verify(nobleSig, msg, noblePub), 50)],
    ["HKDF-SHA-256 + transcript hash (noble)", c.derive],
    ["offer: D's key pairs (once a round)", perOp(() => makeOffer(randomBytes))],
    [
      "answer: E encaps + DH + HKDF (own X448 shared)",
      perOp(() => answerOffer(randomBytes, keys, 1, o.x448Public, o.mlkemPublic, q)),
    ],
    ["finish: D decaps + DH + HKDF", perOp(() => finishOffer(o, keys, 1, a.x448Public, a.ciphertext))],
  ];
  console.log("per operation (CPU ms, median of 5 batches):");
  console.log(
    textTable(
      ["operation", "ms"],
      rows.map(([w, ms]) => [w, ms.toFixed(3)]),
    ),
  );
  return c;
}

/**
 * The crypto a daemon cannot avoid in one round, from this run's per-operation
 * costs: per pair as D decaps, DH, HKDF, two signatures (offer, confirm), one
 * verify (answer); as E encaps, DH, HKDF, one signature (answer), two verifies
 * (offer, confirm); once a round D's key pairs and E's X448 key pair.
 */
function cryptoFloor(c: Costs, asD: number, asE: number): number {
  const d = c.decaps + c.x448Dh + c.derive + 2 * c.sign + c.verify;
  const e = c.encaps + c.x448Dh + c.derive + c.sign + 2 * c.verify;
  const once = (asD > 0 ? c.kemKeygen + c.x448Keygen : 0) + (asE > 0 ? c.x448Keygen : 0);
  return asD * d + asE * e + once;
}

// ---- 2: one rotation of an N-peer mesh, in-process --------------------------

interface Node {
  identity: Identity;
  record: Peer;
  st: EngineState;
  cpuUs: number;
}

const T0 = 1_767_225_600_000;
const INTERVAL_MS = 120_000;

function mesh(n: number): Node[] {
  const nodes: Node[] = [];
  for (let i = 0; i < n; i++) {
    const identity = generateIdentity();
    const record = makeRecord(`p${i}`, identity, generateWgKeyPair().publicKey, i + 2);
    const st = createEngineState(
      {
        profile: TIMER_PROFILES.fast,
        identity: identityKeyer(identity),
        nonceSalt: randomBytes(4).toString("hex"),
        probePort: 51821,
        kex: { intervalMs: INTERVAL_MS, random: (k) => randomBytes(k) },
      },
      [],
      undefined,
    );
    nodes.push({ identity, record, st, cpuUs: 0 });
  }
  return nodes;
}

/** Runs step on a node, charging its CPU; returns the kex events it posted. */
function run(node: Node, input: Parameters<typeof step>[1], now: number): Event[] {
  const t = process.cpuUsage();
  const fx: EngineEffect[] = step(node.st, input, now).effects;
  const d = process.cpuUsage(t);
  node.cpuUs += d.user + d.system;
  return relayedKex(node.record.id, fx);
}

/** Carries events until none is left; returns how many were relayed. */
function relay(nodes: Node[], pending: Event[], now: number): number {
  const byId = new Map(nodes.map((n) => [n.record.id, n]));
  let count = 0;
  while (pending.length > 0) {
    const ev = pending.shift() as Event;
    count++;
    const to = byId.get(ev.to ?? "");
    if (to) pending.push(...run(to, { type: "event", event: ev }, now));
  }
  return count;
}

/** Returns the CPU of all n daemons' shares of one round, summed (ms): the lab's floor. */
function rotationCpu(n: number, costs: Costs): number {
  const nodes = mesh(n);
  const pending: Event[] = [];
  for (const node of nodes) {
    const response: JoinResponse = {
      self: node.record,
      network: NETWORK,
      peers: nodes.filter((x) => x !== node).map((x) => x.record),
      lastEventId: 0,
      registryKey: node.identity.publicKey,
      reflectorPorts: [8470, 8471],
    };
    pending.push(...run(node, { type: "joined", response, existing: [] }, T0));
  }
  relay(nodes, pending, T0); // the first rotation, at the join: not measured
  // The periodic rotation, ROUNDS times: every decapsulating side's interval
  // comes due. A daemon's figure is its median round: process.cpuUsage() is
  // the whole process's, so a GC thread's burst lands on whichever engine runs.
  const perRound = new Map<Node, number[]>(nodes.map((x) => [x, []]));
  let messages = 0;
  const t = Date.now();
  for (let r = 1; r <= ROUNDS; r++) {
    for (const node of nodes) node.cpuUs = 0;
    const now = T0 + r * INTERVAL_MS;
    for (const node of nodes) pending.push(...run(node, { type: "timer", name: "tick" }, now));
    messages = relay(nodes, pending, now);
    for (const node of nodes) perRound.get(node)?.push(node.cpuUs);
  }
  const wall = (Date.now() - t) / ROUNDS;
  for (const node of nodes) node.cpuUs = median(perRound.get(node) ?? []);
  const agree = nodes.every((a) =>
    nodes.every(
      (b) => a === b || a.st.peers.get(b.record.id)?.kex.psk === b.st.peers.get(a.record.id)?.kex.psk,
    ),
  );
  const rows = nodes
    .map((x) => {
      const asD = [...x.st.peers.values()].filter((ps) => ps.kex.role === "decapsulator").length;
      const asE = x.st.peers.size - asD;
      return { ms: x.cpuUs / 1000, asD, asE, floor: cryptoFloor(costs, asD, asE) };
    })
    .sort((a, b) => a.ms - b.ms);
  const mid = rows[Math.floor(rows.length / 2)]!;
  const busiest = rows[rows.length - 1]!;
  // The two ends of the key order: D for every peer, E for every peer.
  const allD = rows.find((r) => r.asE === 0)!;
  const allE = rows.find((r) => r.asD === 0)!;
  const row = (what: string, r: typeof busiest): string[] => [
    `${what} (D for ${r.asD}, E for ${r.asE})`,
    r.ms.toFixed(1),
    r.floor.toFixed(1),
    (r.ms / r.floor).toFixed(2),
    `<= 150 ms: ${r.ms <= 150 ? "met" : "MISSED"}`,
  ];
  console.log(
    `one rotation (median of ${ROUNDS} per daemon), ${n} peers in-process (${(n * (n - 1)) / 2} pairs, ${messages} kex messages, PSKs agree: ${agree}):`,
  );
  console.log(
    textTable(
      ["CPU per daemon", "ms", "crypto floor ms", "ratio", "target"],
      [row("busiest", busiest), row("highest key", allD), row("lowest key", allE), row("median", mid)],
    ),
  );
  console.log(
    `  floor: this run's per-operation costs times the operations the daemon's roles need; ` +
      `all ${n} engines in one process took ${wall.toFixed(0)} ms wall a round`,
  );
  return rows.reduce((a, r) => a + r.ms, 0);
}

console.log(`bench:psk  load average ${load()}  (2 cores shared: figures are noisy)`);
const sharesMs = rotationCpu(N, operations());
if (args.lab) {
  const { labRotation } = await import("./psk-lab.js");
  await labRotation(N, sharesMs);
}
console.log(`load average at the end ${load()}`);
