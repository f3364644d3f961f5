/**
 * Several registries for one network (replicas on one PostgreSQL store,
 * DESIGN §3): `url = https://a:8470, https://b:8470` in NET.conf. The client
 * uses one at a time and moves to the next only when the current one fails,
 * so an edge never flaps between healthy replicas; after the last it wraps
 * to the first. Event ids are the network's on every replica, so a stream
 * resumed on the next one with Last-Event-ID misses and repeats nothing.
 */

/** The URLs of a registry setting, in order ("a, b" or one URL). */
export const registryUrls = (setting: string): string[] =>
  setting
    .split(",")
    .map((u) => u.trim())
    .filter((u) => u !== "");

export class RegistryList {
  private readonly urls: string[];
  private index = 0;

  constructor(setting: string) {
    this.urls = registryUrls(setting);
    if (this.urls.length === 0) throw new Error("no registry URL");
  }

  get current(): string {
    return this.urls[this.index] ?? "";
  }

  get size(): number {
    return this.urls.length;
  }

  /**
   * `url` failed: if it is still the current one, move on and return true.
   * Requests that fail together on one registry move the client only once.
   */
  failed(url: string): boolean {
    if (this.urls.length < 2 || url !== this.current) return false;
    this.index = (this.index + 1) % this.urls.length;
    return true;
  }
}
