// What the lab's PostgreSQL tests (issue 15: failover.test.ts, migrate.test.ts)
// share: a world of public hosts, a database of the registry tier's private
// cluster with the `[store]` section that names it, and the stream fields of
// `scope status --json`.
//
// The cluster runs in the root namespace; registries reach it over its Unix
// socket, which every network namespace shares (the lab's hosts have no route
// to the root namespace's loopback).

import type pg from "pg";
import type { PgServer } from "../registry/pg-server.js";
import { Scenario, type RegistryOptions } from "./scenario.js";
import type { ScopeStatus } from "./status.js";
import type { World } from "./world.js";

/** Hosts on the fake internet, IPv4 only, no routers. */
export const publicHosts = (names: readonly string[]): World => ({
  routers: [],
  hosts: names.map((name) => ({ name, v6: false })),
});

/** A new database: its TCP URL (for the test itself), its socket URL, and registry.conf's section for it. */
export async function labDatabase(
  server: PgServer,
): Promise<{ url: string; socketUrl: string; store: string }> {
  const url = await server.createDatabase();
  const socketUrl = server.socketUrl(new URL(url).pathname.slice(1));
  return { url, socketUrl, store: `[store]\nkind = postgres\nurl = ${socketUrl}\n` };
}

export interface StreamStatus {
  registry: "connected" | "disconnected";
  registryUrl: string;
  stream: { lastEventId: number; delivered: number; repeated: number; reconnects: number };
}
export const streamOf = (s: ScopeStatus): StreamStatus => s as unknown as StreamStatus;

/** Starts the scenario and joins `edges` until they are converged; a failure removes the lab. */
export async function meshOn(
  world: World,
  registryHost: string,
  edges: readonly string[],
  opts: RegistryOptions,
): Promise<Scenario> {
  const sc = await Scenario.start(world, registryHost, ["lab"], opts);
  try {
    await sc.joinAll(edges);
    await sc.waitConverged([...edges], 30_000);
    return sc;
  } catch (e) {
    await sc.teardown();
    throw e;
  }
}

/** The after hook: whichever of the database client, the lab and the server were started. */
export async function endPgLab(db?: pg.Client, sc?: Scenario, server?: PgServer): Promise<void> {
  await db?.end().catch(() => undefined);
  await sc?.teardown();
  server?.stop();
}
