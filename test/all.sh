#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run) and as the README tells you
# to: prepares the host (apt packages, npm ci), builds, lints, then runs the
# tiers in order and prints one closing line "tests: N passed, N failed".
#
#   bash test/all.sh                 every tier
#   SCOPE_TIERS="unit lab" bash test/all.sh
#
# Tiers: unit (no root), registry (real registry processes on loopback),
# lab (network namespaces, nftables NATs, wireguard-go; root), system (QEMU
# VMs with real systemd-networkd and kernel WireGuard; root). Every tier
# cleans up after itself; this script also sweeps lab namespaces on
# exit, whatever happened (QEMU dies with its parent by pdeathsig).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tiers="${SCOPE_TIERS:-unit registry lab system}"

setup_tier=unit
case " $tiers " in *" lab "*) setup_tier=lab ;; esac
case " $tiers " in *" system "*) [[ $setup_tier == lab ]] && setup_tier=all || setup_tier=system ;; esac
bash test/setup.sh "$setup_tier" || { echo "tests: setup failed"; exit 1; }
case " $tiers " in *" registry "*) bash test/setup.sh registry || { echo "tests: setup failed"; exit 1; } ;; esac

sweep() {
  [[ -f dist/test/lab/cleanup.js ]] && node dist/test/lab/cleanup.js >/dev/null 2>&1
  return 0
}
trap sweep EXIT

passed=0 failed=0 skipped=0 broken=()
declare -A took

# Runs one tier, echoing its output, and adds up mocha's summary lines
# ("N passing", "N failing", "N pending") or a plain "N passed, N failed".
run_tier() {
  local name=$1
  shift
  local log start rc p f s n
  log=$(mktemp)
  start=$(date +%s)
  echo "=== tier $name: $*"
  "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  took[$name]=$(($(date +%s) - start))
  p=$(grep -Eo '^ *[0-9]+ passing' "$log" | awk '{s += $1} END {if (NR) print s}')
  f=$(grep -Eo '^ *[0-9]+ failing' "$log" | awk '{s += $1} END {if (NR) print s}')
  s=$(grep -Eo '^ *[0-9]+ pending' "$log" | awk '{s += $1} END {if (NR) print s}')
  if [[ -z $p$f ]]; then
    p=$(grep -Eo '[0-9]+ passed, [0-9]+ failed' "$log" | tail -1 | grep -Eo '^[0-9]+')
    f=$(grep -Eo '[0-9]+ passed, [0-9]+ failed' "$log" | tail -1 | grep -Eo '[0-9]+ failed' | grep -Eo '[0-9]+')
  fi
  # The VM tier closes with "K/N passed in …".
  if [[ -z $p$f ]] && grep -Eq '^[0-9]+/[0-9]+ passed' "$log"; then
    read -r p n < <(grep -Eo '^[0-9]+/[0-9]+ passed' "$log" | tail -1 | tr '/' ' ' | cut -d' ' -f1,2)
    f=$((n - p))
  fi
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
  skipped=$((skipped + ${s:-0}))
  if ((rc != 0)); then
    broken+=("$name")
    # A tier that died before counting still counts as a failure.
    [[ -z ${f:-} || ${f:-0} == 0 ]] && failed=$((failed + 1))
  fi
  rm -f "$log"
}

echo "=== build"
if ! npx tsc -p tsconfig.json; then
  echo "tests: 0 passed, 1 failed (build)"
  exit 1
fi
chmod +x dist/src/cli/main.js
# The CLI as shipped: main.js loads this bundle (src/cli/bundle.ts) while it matches the modules.
node dist/src/cli/bundle.js

run_tier lint bash -c 'npx eslint . && npx prettier --check . && echo "1 passed, 0 failed"'
for t in $tiers; do
  case $t in
    unit) run_tier unit npx mocha 'dist/test/unit/**/*.test.js' ;;
    registry) run_tier registry npx mocha --timeout 60000 'dist/test/registry/**/*.test.js' ;;
    lab)
      ulimit -n 65536 2>/dev/null
      run_tier lab npx mocha --timeout 180000 'dist/test/lab/**/*.test.js'
      ;;
    system) run_tier system node dist/test/system/run.js ;;
    *) echo "unknown tier $t" && broken+=("$t") ;;
  esac
done

for t in "${!took[@]}"; do echo "tier $t: ${took[$t]} s"; done
((${#broken[@]})) && echo "failed tiers: ${broken[*]}"
echo "tests: $passed passed, $failed failed, $skipped skipped"
((${#broken[@]} == 0 && failed == 0))
