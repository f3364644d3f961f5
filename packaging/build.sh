#!/usr/bin/env bash
# `npm run package`: builds scope_VERSION_ARCH.deb and scope-VERSION-1.ARCH.rpm
# from this checkout with the system's own tools (dpkg-deb, rpmbuild), plus a
# flat apt repository (apt/ with a Packages index) that `apt install scope`
# can use:  deb [trusted=yes] file:/PATH/TO/packaging/build/apt ./
#
#   bash packaging/build.sh            (what `npm run package` runs)
#   SCOPE_PKG_VERSION=0.1.1 ...        another version (the upgrade test)
#   SCOPE_PKG_OUT=DIR ...              output directory (default packaging/build)
#   SCOPE_PKG_NO_RPM=1 ...             skip the .rpm (no rpmbuild needed)
#   SCOPE_PKG_NO_TSC=1 ...             use dist/ as built (the system tests' runs)
#   SCOPE_PKG_CACHE=DIR ...            where production node_modules are cached
#
# Both packages carry the same tree, staged once under $out/root: the compiled
# program and its production node_modules under /usr/lib/scope, /usr/bin/scope,
# the units, conffiles, man page, completion, D-Bus policy, sysusers.d and
# tmpfiles.d. better-sqlite3 is a native module: its binary comes from the
# checkout's node_modules (built for this machine's architecture and Node ABI),
# so the packages are Architecture: <build arch> and depend on that ABI.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pkg="$repo/packaging"
out="${SCOPE_PKG_OUT:-$pkg/build}"
cd "$repo"
version="${SCOPE_PKG_VERSION:-$(node -p 'require("./package.json").version')}"
debarch="$(dpkg --print-architecture)"
rpmarch="$(uname -m)"
abi="$(node -p process.versions.modules)"
# SOURCE_DATE_EPOCH makes timestamps (gzip, dpkg-deb, rpm) reproducible.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"

log() { echo "package: $*" >&2; }

# --- 1. compile, stage production node_modules --------------------------------
if [[ -z ${SCOPE_PKG_NO_TSC:-} ]]; then
  log "compiling (tsc)"
  npx tsc -p tsconfig.json
fi
# The web view's page (issue 16): bundled by esbuild (a devDependency) into dist, shipped as files.
if [[ -z ${SCOPE_PKG_NO_TSC:-} || ! -f dist/src/registry/ui/static/app.js ]]; then
  log "bundling the web view (esbuild)"
  node dist/src/registry/ui/build.js
fi
# The CLI bundle main.js loads (src/cli/bundle.ts): always rebuilt from dist as it is now, never a stale one.
log "bundling the CLI (esbuild)"
node dist/src/cli/bundle.js

# Production dependencies, cached by the lock file's hash: `npm ci --omit=dev`
# in a scratch copy of package.json + lock (never in the checkout). Install
# scripts are skipped; the one native binary is copied from the checkout.
lockhash="$(sha256sum package-lock.json package.json "$pkg/prune-modules.mjs" | sha256sum | cut -c1-16)"
cache="${SCOPE_PKG_CACHE:-$out/cache}"
nm="$cache/node_modules-$lockhash"
if [[ ! -d $nm/node_modules ]]; then
  log "npm ci --omit=dev (cache $nm)"
  rm -rf "$cache"
  mkdir -p "$nm.tmp"
  cp package.json package-lock.json "$nm.tmp/"
  (cd "$nm.tmp" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
  node "$pkg/prune-modules.mjs" "$nm.tmp"
  mv "$nm.tmp" "$nm"
fi
native="$repo/node_modules/better-sqlite3/build/Release/better_sqlite3.node"
[[ -f $native ]] || { log "missing $native (run npm ci in the checkout first)"; exit 1; }

# --- 2. the installed tree ------------------------------------------------------
root="$out/root"
rm -rf "$root"
lib="$root/usr/lib/scope"
install -d "$lib/dist" "$root/usr/bin" "$root/etc/scope" "$root/usr/lib/systemd/system" \
  "$root/usr/share/man/man8" "$root/usr/share/bash-completion/completions" \
  "$root/usr/share/dbus-1/system.d" "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" \
  "$root/usr/share/doc/scope"
# Only the program: no tests, benches, source maps or declaration files.
for d in src plugins dbus networkd; do
  cp -r "dist/$d" "$lib/dist/$d"
done
find "$lib/dist" \( -name '*.map' -o -name '*.d.ts' -o -name '*.test.js' \) -delete
# The bundler's script needs esbuild, which is not shipped; its output is.
rm -f "$lib/dist/src/registry/ui/build.js" "$lib/dist/src/cli/bundle.js"
# An installed tree is never rebuilt in place: main.js need not stat the bundle's inputs (their mtimes do not survive the packages).
node -e 'const f = process.argv[1], fs = require("fs"), s = JSON.parse(fs.readFileSync(f, "utf8"));
fs.writeFileSync(f, JSON.stringify({ entry: s.entry, sealed: true, inputs: {} }) + "\n");' "$lib/dist/src/bundle/inputs.json"
# main.js reads the version from ../../../package.json and Node needs "type": "module".
node -e '
  const p = require("./package.json");
  const o = { name: p.name, version: process.argv[1], description: p.description, license: p.license,
    type: p.type, private: true, engines: p.engines, dependencies: p.dependencies };
  require("fs").writeFileSync(process.argv[2], JSON.stringify(o, null, 2) + "\n");
' "$version" "$lib/package.json"
cp -r "$nm/node_modules" "$lib/node_modules"
rm -rf "$lib/node_modules/.package-lock.json" "$lib/node_modules/.bin"
bs="$lib/node_modules/better-sqlite3"
rm -rf "$bs/deps" "$bs/src" "$bs/binding.gyp"
install -D -m 0644 "$native" "$bs/build/Release/better_sqlite3.node"
# Docs and tests of dependencies are not needed at run time; licences stay.
find "$lib/node_modules" -type f \( -iname '*.md' ! -iname 'license*' -o -name '*.ts' -o -name '*.mts' \
  -o -name '*.cts' -o -name '*.map' -o -name '.npmignore' -o -name '.eslintrc*' -o -name '.travis.yml' \
  -o -name '*.markdown' -o -name '.editorconfig' -o -name '.gitattributes' -o -name '.babelrc' -o -name '*.bat' -o -name '*.sh' \) -delete
find "$lib/node_modules" -depth -type d \( -name test -o -name tests -o -name example -o -name examples \
  -o -name .github -o -name .nyc_output \) -exec rm -rf {} +
# Nothing under /usr/lib/scope is run directly (/usr/bin/scope calls node on
# main.js), so no file there needs an executable bit.
# So the shebangs of bundled CLIs (and of main.js) go, kept as a comment line
# so that stack traces keep their line numbers.
chmod -R u=rwX,go=rX "$lib"
find "$lib" -type f -exec chmod 0644 {} +
grep -rlZ --include='*.js' --include='*.mjs' --include='*.cjs' -m1 '^#!' "$lib" | xargs -0 -r sed -i '1s|^#!.*|//|'
find "$lib/node_modules" -type f \( -name '*.gif' -o -name '*.png' -o -name '*.jpg' \) -delete
find "$lib" -depth -type d -empty -delete
strip --strip-unneeded --remove-section=.comment "$bs/build/Release/better_sqlite3.node"

install -m 0755 "$pkg/scope.sh" "$root/usr/bin/scope"
install -m 0644 "$pkg/systemd/scope-registry.service" "$pkg/systemd/scope@.service" "$root/usr/lib/systemd/system/"
install -m 0644 "$pkg/config/registry.conf" "$root/etc/scope/registry.conf"
install -m 0644 "$pkg/config/NET.conf.example" "$root/etc/scope/NET.conf.example"
sed "s/@VERSION@/$version/" "$pkg/man/scope.8" | gzip -9n >"$root/usr/share/man/man8/scope.8.gz"
node "$pkg/completion/gen-completion.mjs" dist >"$root/usr/share/bash-completion/completions/scope"
install -m 0644 dbus/cc.ltgc.Scope1.conf "$root/usr/share/dbus-1/system.d/"
install -m 0644 "$pkg/sysusers.conf" "$root/usr/lib/sysusers.d/scope.conf"
install -m 0644 "$pkg/tmpfiles.conf" "$root/usr/lib/tmpfiles.d/scope.conf"
install -m 0644 "$pkg/deb/copyright" "$root/usr/share/doc/scope/copyright"
install -D -m 0644 "$pkg/deb/lintian-overrides" "$root/usr/share/lintian/overrides/scope"
sed "s/@VERSION@/$version/" "$pkg/deb/changelog" | gzip -9n >"$root/usr/share/doc/scope/changelog.gz"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
installed_kb="$(du -sk --apparent-size "$root" | cut -f1)"

# --- 3. .deb --------------------------------------------------------------------
deb="$out/scope_${version}_${debarch}.deb"
dr="$out/deb-root"
rm -rf "$dr"
cp -a "$root" "$dr"
install -d "$dr/DEBIAN"
# Shared-library dependencies of the native module, worked out the Debian way.
# dpkg-shlibdeps wants a debian/control in its working directory; a stub does.
shl="$(mktemp -d)"
mkdir "$shl/debian"
printf 'Source: scope\n\nPackage: scope\nArchitecture: any\n' >"$shl/debian/control"
shlibs="$(cd "$shl" && dpkg-shlibdeps -O --warnings=0 "$bs/build/Release/better_sqlite3.node" 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')"
rm -rf "$shl"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$debarch/" -e "s/@SIZE@/$installed_kb/" \
  -e "s/@ABI@/$abi/" -e "s/@SHLIBS@/${shlibs:-libc6}/" "$pkg/deb/control" >"$dr/DEBIAN/control"
for s in postinst prerm postrm; do install -m 0755 "$pkg/deb/$s" "$dr/DEBIAN/$s"; done
(cd "$dr" && find etc -type f | sed 's|^|/|' | sort) >"$dr/DEBIAN/conffiles"
(cd "$dr" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$dr/DEBIAN/md5sums"
chmod 0644 "$dr/DEBIAN/conffiles" "$dr/DEBIAN/md5sums" "$dr/DEBIAN/control"
rm -f "$deb"
dpkg-deb --root-owner-group -Zxz --build "$dr" "$deb" >/dev/null
rm -rf "$dr"
log "built $deb ($(du -k "$deb" | cut -f1) KiB, installed $installed_kb KiB)"

# --- 4. local apt repository ------------------------------------------------------
apt="$out/apt"
mkdir -p "$apt"
cp "$deb" "$apt/"
(cd "$apt" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null >Packages && gzip -9nk -f Packages)
log "apt repository $apt ($(grep -c '^Package:' "$apt/Packages") package(s)); use: deb [trusted=yes] file:$apt ./"

# --- 5. .rpm --------------------------------------------------------------------
if [[ -z ${SCOPE_PKG_NO_RPM:-} ]]; then
  top="$out/rpmbuild"
  rm -rf "$top"
  mkdir -p "$top"/{BUILD,RPMS,SOURCES,SPECS,SRPMS}
  rpmbuild -bb --quiet \
    --define "_topdir $top" \
    --define "_build_id_links none" \
    --define "scope_version ${version//-/_}" \
    --define "scope_root $root" \
    --define "scope_abi $abi" \
    --define "_binary_payload w9.xzdio" \
    --target "$rpmarch" \
    "$pkg/rpm/scope.spec" >&2
  rpm="$(find "$top/RPMS" -name '*.rpm' | head -1)"
  mv "$rpm" "$out/"
  rm -rf "$top"
  log "built $out/$(basename "$rpm") ($(du -k "$out/$(basename "$rpm")" | cut -f1) KiB)"
fi
