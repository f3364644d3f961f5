/**
 * A private PostgreSQL server for the registry tier: Debian's `postgresql`
 * package (test/setup.sh installs it) run as a throwaway cluster, initdb
 * into a temp dir, listening on a free loopback port and a socket in that
 * dir, trust auth for the test role only on loopback. Stopped and removed
 * when the test process exits, however it exits; nothing system-wide is
 * touched (the package's own cluster is neither needed nor started).
 */
import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort } from "./harness.js";

export interface PgServer {
  port: number;
  /** A URL for database `db` (default: the maintenance database). */
  url(db?: string): string;
  /**
   * The same database over the server's Unix socket: reachable from every
   * network namespace (the lab's hosts cannot reach the root one's loopback).
   */
  socketUrl(db: string): string;
  /** A new empty database; returns its URL. */
  createDatabase(): Promise<string>;
  /** pg_ctl restart -m fast: every connection is cut, the server is back when this resolves. */
  restart(): Promise<void>;
  stop(): void;
}

const ROLE = "scope";

/** Newest installed major version's bin dir, as Debian lays it out. */
function binDir(): string {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)) : [];
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (!newest || !existsSync(join(root, newest, "bin", "initdb")))
    throw new Error("PostgreSQL server not installed: run `bash test/setup.sh registry` (as root)");
  return join(root, newest, "bin");
}

/** initdb and postgres refuse to run as root: then they run as the package's postgres user. */
function run(bin: string, args: string[]): void {
  const asRoot = userInfo().uid === 0;
  const cmd = asRoot ? "runuser" : bin;
  const argv = asRoot ? ["-u", "postgres", "--", bin, ...args] : args;
  const r = spawnSync(cmd, argv, { encoding: "utf8", cwd: "/" });
  if (r.status !== 0) throw new Error(`${bin} ${args.join(" ")} failed:\n${r.stdout}${r.stderr}`);
}

/** run, without blocking the event loop (a restart under load: the test's own clients keep going). */
async function runAsync(bin: string, args: string[]): Promise<void> {
  const asRoot = userInfo().uid === 0;
  await promisify(execFile)(
    asRoot ? "runuser" : bin,
    asRoot ? ["-u", "postgres", "--", bin, ...args] : args,
    {
      cwd: "/",
    },
  );
}

export async function startPostgres(): Promise<PgServer> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), "scope-pg-"));
  if (userInfo().uid === 0) {
    const id = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" });
    const gid = spawnSync("id", ["-g", "postgres"], { encoding: "utf8" });
    chownSync(dir, Number(id.stdout.trim()), Number(gid.stdout.trim()));
  }
  const data = join(dir, "data");
  const port = await freePort();
  run(join(bin, "initdb"), [
    "-D",
    data,
    "-U",
    ROLE,
    "-A",
    "trust",
    "-E",
    "UTF8",
    "--no-sync",
    "--no-instructions",
  ]);
  const options = [
    `-p ${port}`,
    `-k ${dir}`,
    "-c listen_addresses=127.0.0.1",
    "-c max_connections=300",
    // Speed only: fsync guards against an OS crash, which no test simulates; commits still wait for WAL.
    "-c fsync=off",
  ].join(" ");
  const ctl = (args: string[]) => run(join(bin, "pg_ctl"), ["-D", data, "-w", "-t", "60", ...args]);
  let running = false;
  const stop = () => {
    if (!running) return;
    running = false;
    try {
      ctl(["-m", "immediate", "stop"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      process.off("exit", stop);
    }
  };
  ctl(["-l", join(dir, "server.log"), "-o", options, "start"]);
  running = true;
  process.on("exit", stop);

  const url = (db = "postgres") => `postgres://${ROLE}@127.0.0.1:${port}/${db}`;
  let n = 0;
  return {
    port,
    url,
    socketUrl: (db) => `postgres://${ROLE}@${encodeURIComponent(dir)}:${port}/${db}`,
    async createDatabase() {
      const name = `t${process.pid}_${++n}`;
      const c = new pg.Client({ connectionString: url() });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return url(name);
    },
    async restart() {
      await runAsync(join(bin, "pg_ctl"), [
        "-D",
        data,
        "-w",
        "-t",
        "60",
        "-m",
        "fast",
        "-l",
        join(dir, "server.log"),
        "-o",
        options,
        "restart",
      ]);
    },
    stop,
  };
}

let shared: Promise<PgServer> | undefined;

/** One server per test process, shared by every suite that needs one (each takes its own database). */
export const sharedPostgres = (): Promise<PgServer> => (shared ??= startPostgres());
