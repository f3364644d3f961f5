/**
 * Several registries for one network (replicas on one PostgreSQL store,
 * DESIGN §3): `url = https://a:8470, https://b:8470` in NET.conf, and a DNS
 * name with several addresses counts as several registries, one per
 * address. The client uses one at a time and moves to the next only when
 * the current one fails, so an edge never flaps between healthy replicas;
 * after the last it wraps to the first (and resolves the names again:
 * addresses change). Event ids are the network's on every replica, so a
 * stream resumed on the next one with Last-Event-ID misses and repeats
 * nothing.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";

/** The URLs of a registry setting, in order ("a, b" or one URL). */
export const registryUrls = (setting: string): string[] =>
  setting
    .split(",")
    .map((u) => u.trim())
    .filter((u) => u !== "");

/** One registry to try: a URL of the list and, when its host is a DNS name, one of its addresses. */
export interface Candidate {
  readonly url: string;
  /** Connect here instead of resolving the URL's host; the Host header and TLS still use the name. */
  readonly address?: string;
}

/** A host name's addresses, in the order to try them. */
export type Resolver = (host: string) => Promise<string[]>;

export const systemResolver: Resolver = async (host) =>
  (await lookup(host, { all: true })).map((a) => a.address);

const same = (a: Candidate, b: Candidate): boolean => a.url === b.url && a.address === b.address;

export class RegistryList {
  private readonly urls: string[];
  private candidates: Candidate[];
  private index = 0;
  /** The names resolved into candidates; undefined again after a wrap-around. */
  private resolved: Promise<void> | undefined;

  constructor(
    setting: string,
    private readonly resolve: Resolver = systemResolver,
  ) {
    this.urls = registryUrls(setting);
    if (this.urls.length === 0) throw new Error("no registry URL");
    this.candidates = this.urls.map((url) => ({ url }));
  }

  get current(): Candidate {
    return this.candidates[this.index] ?? { url: "" };
  }

  /** Every candidate, in the order they are tried. */
  get all(): readonly Candidate[] {
    return this.candidates;
  }

  /**
   * `c` failed: if it is still the current one, move on and return true.
   * Requests that fail together on one registry move the client only once.
   */
  failed(c: Candidate): boolean {
    if (this.candidates.length < 2 || !same(c, this.current)) return false;
    this.index = (this.index + 1) % this.candidates.length;
    if (this.index === 0) this.resolved = undefined;
    return true;
  }

  /**
   * Expands every URL whose host is a DNS name into one candidate per
   * address, once, and again after each wrap-around. A name that does not
   * resolve stays one candidate: its connect says why. The URL in use stays
   * in use (its first address, if it was not pinned to one yet).
   */
  resolveNames(): Promise<void> {
    return (this.resolved ??= this.expand());
  }

  private async expand(): Promise<void> {
    const lists = await Promise.all(
      this.urls.map(async (url): Promise<Candidate[]> => {
        const host = new URL(url).hostname.replace(/^\[|\]$/g, "");
        if (isIP(host) !== 0) return [{ url }];
        const addresses = await this.resolve(host).catch(() => []);
        return addresses.length === 0
          ? [{ url }]
          : [...new Set(addresses)].map((address) => ({ url, address }));
      }),
    );
    const was = this.current;
    this.candidates = lists.flat();
    const at = this.candidates.findIndex((c) => same(c, was));
    this.index = Math.max(0, at >= 0 ? at : this.candidates.findIndex((c) => c.url === was.url));
  }
}
