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
//    engine that ran it. Target: <= 150 ms per daemon. Backend applies (one
//    UAPI write per changed peer) and the registry are not in this figure.
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
import { answerOffer, finishOffer, makeOffer, x448Pair, x448Shared } from "../src/crypto/kex.js";
import { generateIdentity, generateWgKeyPair, type Identity } from "../src/crypto/keys.js";
import { textTable } from "../test/lab/checks.js";
import { makeRecord, NETWORK, relayedKex } from "../test/unit/helpers/kex-pair.js";

const args = parseArgs({
  options: {
    lab: { type: "boolean" },
    peers: { type: "string", default: "50" },
    reps: { type: "string", default: "200" },
  },
}).values;
const N = Number(args.peers);
const REPS = Number(args.reps);

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

function operations(): void {
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
  const rows: [string, number][] = [
    ["ML-KEM-768 keygen (noble)", perOp(() => ml_kem768.keygen())],
    ["ML-KEM-768 encaps (noble)", perOp(() => ml_kem768.encapsulate(kem.publicKey))],
    ["ML-KEM-768 decaps (noble)", perOp(() => ml_kem768.decapsulate(enc.cipherText, kem.secretKey))],
    ["X448 keygen (OpenSSL)", perOp(() => x448Pair(randomBytes(56)))],
    ["X448 DH (OpenSSL)", perOp(() => x448Shared(p.key, q.public))],
    ["X448 DH (noble, reference)", perOp(() => x448.getSharedSecret(nobleX, nobleXPub), 50)],
    ["Ed25519 sign (OpenSSL)", perOp(() => sign(null, msg, edKey))],
    ["Ed25519 verify (OpenSSL)", perOp(() => verify(null, msg, edPub, sig))],
    ["Ed25519 verify (noble, reference)", perOp(() => ed25519.verify(nobleSig, msg, noblePub), 50)],
    ["offer: D's key pairs", perOp(() => makeOffer(randomBytes))],
    [
      "answer: E encaps + DH + HKDF",
      perOp(() => answerOffer(randomBytes, keys, 1, o.x448Public, o.mlkemPublic)),
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

function rotationCpu(n: number): void {
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
  for (const node of nodes) node.cpuUs = 0;
  // The periodic rotation: every decapsulating side's interval comes due.
  const now = T0 + INTERVAL_MS;
  const t = Date.now();
  for (const node of nodes) pending.push(...run(node, { type: "timer", name: "tick" }, now));
  const messages = relay(nodes, pending, now);
  const wall = Date.now() - t;
  const ms = nodes.map((x) => x.cpuUs / 1000).sort((a, b) => a - b);
  const agree = nodes.every((a) =>
    nodes.every(
      (b) => a === b || a.st.peers.get(b.record.id)?.kex.psk === b.st.peers.get(a.record.id)?.kex.psk,
    ),
  );
  const median = ms[Math.floor(ms.length / 2)] as number;
  const max = ms[ms.length - 1] as number;
  console.log(
    `one rotation, ${n} peers in-process (${(n * (n - 1)) / 2} pairs, ${messages} kex messages, PSKs agree: ${agree}):`,
  );
  console.log(
    textTable(
      ["CPU per daemon", "ms", "target"],
      [
        ["median", median.toFixed(1), `<= 150 ms: ${median <= 150 ? "met" : "MISSED"}`],
        ["max", max.toFixed(1), `<= 150 ms: ${max <= 150 ? "met" : "MISSED"}`],
        ["all 50 in one process (wall)", String(wall), "-"],
      ],
    ),
  );
}

console.log(`bench:psk  load average ${load()}  (2 cores shared: figures are noisy)`);
operations();
rotationCpu(N);
if (args.lab) {
  const { labRotation } = await import("./psk-lab.js");
  await labRotation(N);
}
console.log(`load average at the end ${load()}`);
