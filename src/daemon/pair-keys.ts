/**
 * Pair keys worked out ahead. A probe pair key is an X25519 agreement on a
 * converted Ed25519 key in pure JS: 1.5-3 ms each, and the engine asks for
 * one per peer in the step that gives it its peers (the first `joined`),
 * which made that step ~30 ms for 8 peers in the join lab. Start-up knows
 * the peers earlier (its list arrives while the interface is being made)
 * and has the keys made then, one per turn of the event loop (the caller's
 * scheduler: the daemon's timers), so the interface's own I/O is not held up.
 */
import type { EngineIdentity } from "../core/engine/types.js";

export interface KeyerAhead extends EngineIdentity {
  /** Works out the pair keys with these identity keys, one per `later` turn; the engine's first ask takes each. */
  prepare(theirs: readonly string[], later: (fn: () => void) => void): void;
}

export function keyerAhead(inner: EngineIdentity): KeyerAhead {
  // Each kept key is handed out once: a peer that leaves and comes back gets a fresh one.
  const ready = new Map<string, Uint8Array>();
  const make = (theirs: string): void => {
    if (ready.has(theirs) || theirs === inner.publicKey) return;
    try {
      ready.set(theirs, inner.pairKey(theirs));
    } catch {
      // A malformed key: the engine's own ask throws, and it treats the peer as unverifiable.
    }
  };
  return {
    publicKey: inner.publicKey,
    sign: (message) => inner.sign(message),
    pairKey(theirs) {
      const key = ready.get(theirs);
      if (!key) return inner.pairKey(theirs);
      ready.delete(theirs);
      return key;
    },
    prepare(theirs, later) {
      const todo = [...theirs];
      const next = (): void => {
        const t = todo.shift();
        if (t === undefined) return;
        make(t);
        later(next);
      };
      next();
    },
  };
}
