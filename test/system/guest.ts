// What a guest runs: the host writes run-in-guest.sh (a fixed preamble plus
// the case's script) and input files into a per-VM share before boot.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cacheDir } from "./host.js";

export interface GuestSpec {
  /** bash, run as root after boot with `set -euo pipefail` and xtrace (trace lands in stderr). */
  script: string;
  /** Files the guest reads at $SCOPE_IN/NAME (keys, configs), written before boot. */
  files?: Record<string, string>;
  /** Extra environment for the script. */
  env?: Record<string, string>;
}

/** Shell-quote for a single-quoted bash word. */
function q(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

// barrier NAME: rendezvous with the other VMs of the group (see runGroup in
// vm.ts). The 9p share has no cache, so the host's file appears at once.
const PREAMBLE = `set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export SCOPE_IN=/mnt/scope/in SCOPE_OUT=/mnt/scope/out SCOPE_PROJECT=/project
barrier() {
	{ set +x; } 2>/dev/null # the wait loop would flood stderr with its trace
	echo "barrier $1" >&2
	touch "$SCOPE_OUT/barrier.$1"
	while [ ! -e "$SCOPE_IN/barrier.$1" ]; do sleep 0.2; done
	set -x
}
# A worktree's node_modules is a link to the main checkout's, shared as
# "modules" (vm.ts): mount it where the link points.
if [ -L /project/node_modules ] && [ ! -e /project/node_modules/ ]; then
	mkdir -p "$(readlink /project/node_modules)"
	mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro,cache=loose modules "$(readlink /project/node_modules)"
fi
PS4='+ '
set -x
`;

export function writeGuestScript(shareDir: string, vmName: string, spec: GuestSpec): void {
  mkdirSync(join(shareDir, "in"), { recursive: true });
  mkdirSync(join(shareDir, "out"), { recursive: true });
  for (const [name, content] of Object.entries(spec.files ?? {})) {
    writeFileSync(join(shareDir, "in", name), content, { mode: 0o600 });
  }
  const env = { SCOPE_VM_NAME: vmName, ...spec.env };
  const exports = Object.entries(env)
    .map(([k, v]) => `export ${k}=${q(v)}\n`)
    .join("");
  writeFileSync(join(shareDir, "run-in-guest.sh"), `${PREAMBLE}${exports}\n${spec.script}\n`, {
    mode: 0o755,
  });
}

/** Keep this many past runs' serial logs and outputs for post-mortems. */
const KEEP_RUNS = 5;

/** A fresh directory for one run.ts invocation, under the (gitignored) cache. */
export function newRunDir(): string {
  const runs = join(cacheDir(), "runs");
  mkdirSync(runs, { recursive: true });
  const old = readdirSync(runs).sort();
  for (const name of old.slice(0, Math.max(0, old.length - (KEEP_RUNS - 1)))) {
    rmSync(join(runs, name), { recursive: true, force: true });
  }
  const dir = join(runs, new Date().toISOString().replace(/[:.]/g, "-"));
  mkdirSync(dir, { recursive: true });
  return dir;
}
