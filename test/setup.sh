#!/usr/bin/env bash
# Prepare a host for one test tier. Run as root on Debian by CI (and by hand).
#
#   test/setup.sh [unit|registry|lab|system|package|all]     (default: unit)
#
# Idempotent and fast when warm: apt runs only if a command the tier needs is
# missing, `apt-get update` at most once per run, and `npm ci` only when
# node_modules is absent or older than package-lock.json. Package sources are
# whatever the machine is configured with; no host names belong in this repo.
set -euo pipefail

tier="${1:-unit}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# "command:package" pairs. A tier is satisfied when every command exists, so a
# warm machine never touches apt.
need_unit=(node:nodejs npm:npm)
need_lab=(
  ip:iproute2
  nft:nftables
  wg:wireguard-tools
  wireguard-go:wireguard-go
  conntrack:conntrack
  ping:iputils-ping
  pkill:procps
  python3:python3-minimal
  # test/lab/web-view.test.ts opens the registry's page in headless chromium.
  chromium:chromium
)
# The registry tier's tests read the real SQLite file (sqlite3) and make a test CA (openssl);
# the web view's tests (issue 16) open the page in Debian's headless chromium.
need_registry=(sqlite3:sqlite3 openssl:openssl chromium:chromium)
# `npm run package` alone.
need_package=(
  dpkg-scanpackages:dpkg-dev
  rpmbuild:rpm
)
need_system=(
  debootstrap:debootstrap
  qemu-system-x86_64:qemu-system-x86
  qemu-img:qemu-utils
  mkfs.ext4:e2fsprogs
  # The package cases: `npm run package` (dpkg-deb, dpkg-shlibdeps,
  # dpkg-scanpackages, rpmbuild), the linters, and the nspawn containers.
  dpkg-scanpackages:dpkg-dev
  rpmbuild:rpm
  lintian:lintian
  rpmlint:rpmlint
  systemd-nspawn:systemd-container
  nsenter:util-linux
)

case "$tier" in
  unit) wanted=("${need_unit[@]}") ;;
  registry) wanted=("${need_unit[@]}" "${need_registry[@]}") ;;
  lab) wanted=("${need_unit[@]}" "${need_lab[@]}") ;;
  system) wanted=("${need_unit[@]}" "${need_system[@]}") ;;
  package) wanted=("${need_unit[@]}" "${need_package[@]}") ;;
  all) wanted=("${need_unit[@]}" "${need_registry[@]}" "${need_lab[@]}" "${need_system[@]}") ;;
  *)
    echo "usage: $0 [unit|registry|lab|system|package|all]" >&2
    exit 2
    ;;
esac

missing=()
for pair in "${wanted[@]}"; do
  cmd="${pair%%:*}"
  pkg="${pair#*:}"
  # sbin paths are not always on a CI user's PATH even when running as root.
  if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1; then
    missing+=("$pkg")
  fi
done

# The registry tier runs private PostgreSQL clusters (test/registry/pg-server.ts) from
# the server package's binaries, and so does the lab's replica failover test; the
# package's own cluster is not wanted, so a fresh install is told not to create
# (and start) one.
if [[ $tier == registry || $tier == lab || $tier == all ]] && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  missing+=(postgresql)
  if [[ $(id -u) -eq 0 && ! -e /etc/postgresql-common/createcluster.conf ]]; then
    mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
  fi
fi

if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing packages ${missing[*]} and not root; install them first" >&2
    exit 1
  fi
  echo "setup: installing with apt: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Update the lists once: a fresh image may have none, and an install from
  # stale lists fails on rotated package versions.
  apt-get update -q -o DPkg::Lock::Timeout=600
  apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}"
fi

# Scope needs Node >= 20.19 (require of ES modules, the zod and koa versions
# in package.json); a stock Debian 12 has 18. Fail here with one clear line,
# not later with a syntax error from a dependency.
node_version="$(node -p 'process.versions.node' 2>/dev/null || echo 0)"
if ! node -e '
  const [maj, min] = process.versions.node.split(".").map(Number);
  process.exit(maj > 20 || (maj === 20 && min >= 19) ? 0 : 1);
' 2>/dev/null; then
  echo "setup: Node ${node_version} is too old: Scope needs Node >= 20.19 (Debian 12 ships 18; install a newer nodejs first)" >&2
  exit 1
fi

# Node dependencies. `npm install` writes package-lock.json after node_modules,
# so a newer lock file alone does not mean a stale tree: then compare the lock
# with npm's record of what is installed (node_modules/.package-lock.json) and
# run `npm ci` only when a package or version differs.
cd "$repo"
tree_matches_lock() {
  node -e '
    const fs = require("node:fs");
    const want = JSON.parse(fs.readFileSync("package-lock.json", "utf8")).packages;
    const have = JSON.parse(fs.readFileSync("node_modules/.package-lock.json", "utf8")).packages;
    delete want[""];
    const stale = Object.entries(want).some(
      ([k, v]) => have[k]?.version !== v.version && !(v.optional && !have[k]),
    );
    const extra = Object.keys(have).some((k) => !(k in want));
    process.exit(stale || extra ? 1 : 0);
  ' 2>/dev/null
}
if [[ ! -d node_modules ]] || { [[ package-lock.json -nt node_modules ]] && ! tree_matches_lock; }; then
  # The first install takes about a minute with no output of its own: say what is happening.
  echo "setup: installing $(node -p 'Object.keys(require("./package-lock.json").packages).length - 1') Node packages from package-lock.json (npm ci; about a minute the first time)…"
  npm ci --no-audit --no-fund
fi

echo "setup: tier '$tier' ready"
