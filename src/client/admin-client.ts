/**
 * The admin side of the registry API, for `scope network|token|peer`: over
 * the root-only Unix socket on the registry host, or a URL with the admin
 * bearer token from elsewhere.
 */
import {
  API_PREFIX,
  Network,
  NetworkList,
  Peer as PeerSchema,
  PeerList,
  PathList,
  TokenCreated,
  ViewerTokenCreated,
  type PathRecord,
  type ViewerTokenInput,
  type NetworkInput,
  type Peer,
  type PeerAdminUpdate,
  type TokenInput,
} from "../core/protocol.js";
import { z } from "zod";
import { ScopeError } from "../core/errors.js";
import { call, jsonBody, type Target } from "./http.js";
import { isLoopbackHost, type TlsTrust } from "./tls.js";

export type AdminTarget = { socketPath: string } | { url: string; token: string; tls?: TlsTrust };

export class AdminClient {
  private readonly target: Target;
  private readonly auth: Record<string, string>;

  constructor(where: AdminTarget) {
    if ("socketPath" in where) {
      this.target = { socketPath: where.socketPath };
      this.auth = {};
    } else {
      // The bearer token is the registry's master key: never in clear text past this host.
      const u = new URL(where.url);
      if (u.protocol !== "https:" && !isLoopbackHost(u.hostname)) {
        throw new ScopeError(
          "usage",
          `--registry ${where.url}: the admin token is sent only over https:// (or http:// to loopback)`,
        );
      }
      this.target = { url: where.url, ...(where.tls ? { tls: where.tls } : {}) };
      this.auth = { authorization: `Bearer ${where.token}` };
    }
  }

  async listNetworks(): Promise<Network[]> {
    return (await this.request("GET", "/networks", NetworkList)).networks;
  }

  createNetwork(input: NetworkInput): Promise<Network> {
    return this.request("POST", "/networks", Network, input);
  }

  getNetwork(name: string): Promise<Network> {
    return this.request("GET", `/networks/${encodeURIComponent(name)}`, Network);
  }

  /** The answer holds the token text, which the registry never shows again. */
  createToken(network: string, input: TokenInput): Promise<TokenCreated> {
    return this.request("POST", `/networks/${encodeURIComponent(network)}/tokens`, TokenCreated, input);
  }

  /** A read-only token for the web view of one network (scope token create --viewer). */
  createViewerToken(network: string, input: ViewerTokenInput): Promise<ViewerTokenCreated> {
    const path = `/networks/${encodeURIComponent(network)}/viewer-tokens`;
    return this.request("POST", path, ViewerTokenCreated, input);
  }

  /** What each member last reported about each other member (the web view's data). */
  async listPaths(network: string): Promise<PathRecord[]> {
    return (await this.request("GET", `/networks/${encodeURIComponent(network)}/paths`, PathList)).paths;
  }

  async listPeers(network: string): Promise<Peer[]> {
    return (await this.request("GET", `/networks/${encodeURIComponent(network)}/peers`, PeerList)).peers;
  }

  /** Makes a peer a hub or an edge; members learn it through peerUpdate. */
  setPeer(network: string, peerId: string, update: PeerAdminUpdate): Promise<Peer> {
    const path = `/networks/${encodeURIComponent(network)}/peers/${encodeURIComponent(peerId)}`;
    return this.request("PATCH", path, PeerSchema, update);
  }

  async removePeer(network: string, peerId: string): Promise<void> {
    const path = `/networks/${encodeURIComponent(network)}/peers/${encodeURIComponent(peerId)}`;
    await this.request("DELETE", path, z.undefined());
  }

  private request<S extends z.ZodType>(
    method: string,
    path: string,
    schema: S,
    body?: unknown,
  ): Promise<z.output<S>> {
    const headers = { ...this.auth, ...(body === undefined ? {} : { "content-type": "application/json" }) };
    const req = {
      method,
      path: API_PREFIX + path,
      headers,
      body: body === undefined ? undefined : jsonBody(body),
    };
    return call(this.target, req, schema);
  }
}
