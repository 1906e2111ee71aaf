#!/usr/bin/env bash
# Builds the Debian package for one CPU from this checkout:
#   npm run deb -- --arch amd64|arm64|armhf [--out DIR] [--no-build]
# into DIR (default packages/) as edgegate_<version>_<arch>.deb. What goes in:
#   /usr/lib/edgegate          what `npm pack` holds of dist/ (no tests, bench,
#                              source maps) and package.json, with the production
#                              node_modules for that CPU (npm ci --cpu --os=linux
#                              from the lock file; the only network access)
#   /usr/bin/edgegate          a wrapper: /usr/bin/node with the bin's flags
#   /lib/systemd/system        systemd/edgegate.service, ExecStart=/usr/bin/edgegate
#   /etc/edgegate/config.yaml  config/examples/raspberry-pi.yaml, a conffile
#   /usr/share/doc/edgegate    README, changelogs, copyright, examples
# and the maintainer scripts in packaging/debian/. The state directory is
# systemd's (StateDirectory=). Needs dpkg-deb (1.19+ for --root-owner-group).
# Environment: DEBEMAIL and DEBFULLNAME set the Maintainer field.
set -euo pipefail
cd "$(dirname "$0")/.."

arch="" out=packages build=1
usage() { echo "usage: npm run deb -- --arch amd64|arm64|armhf [--out DIR] [--no-build]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) [ $# -ge 2 ] || usage; arch="$2"; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; out="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    *) usage ;;
  esac
done
# Debian's architecture names, and npm's (process.arch) for the same CPUs
case "$arch" in
  amd64) cpu=x64 ;;
  arm64) cpu=arm64 ;;
  armhf) cpu=arm ;;
  *) usage ;;
esac

say() { echo "deb[$arch]: $*"; }
die() { echo "deb[$arch]: error: $*" >&2; exit 1; }
command -v dpkg-deb >/dev/null 2>&1 || die "dpkg-deb not found (apt-get install dpkg)"

version="$(node -p 'require("./package.json").version')"
maintainer="${DEBFULLNAME:-edgegate maintainers} <${DEBEMAIL:-maintainers@edgegate.invalid}>"
# the release date from CHANGELOG.md ("## [0.2.0] - 2026-12-05"), so that a
# rebuild gives the same changelog; an unreleased version gets today's
release_date="$(sed -n "s/^## \[$version\] - \([0-9-]*\).*/\1/p" CHANGELOG.md | head -1)"
[ -n "$release_date" ] || release_date="$(date -u +%F)"

if [ "$build" = 1 ]; then
  say "building dist/"
  npm run --silent build
fi
[ -f dist/gateway/cli/main.js ] || die "dist/ is not built (npm run build)"

work="$(mktemp -d "${TMPDIR:-/tmp}/edgegate-deb-XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/root"
lib="$root/usr/lib/edgegate"
doc="$root/usr/share/doc/edgegate"

# what the npm package holds (package.json "files"), as one source of truth
say "packing the npm package"
npm pack --silent --ignore-scripts --pack-destination "$work" >/dev/null
mkdir "$work/npm"
tar xzf "$work/edgegate-$version.tgz" -C "$work/npm"
pkg="$work/npm/package"

say "installing the production dependencies for linux-$cpu"
mkdir -p "$lib"
cp "$pkg/package.json" package-lock.json "$lib/"
# no install scripts: the native parts (serialport, koffi) come prebuilt for every CPU
(cd "$lib" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error --cpu="$cpu" --os=linux >/dev/null) \
  || die "npm ci failed"
rm "$lib/package-lock.json" "$lib/node_modules/.package-lock.json"
cp -R "$pkg/dist" "$lib/"

# What never runs on this CPU's Debian, or never runs at all. Other
# platforms' native builds (Debian is glibc: no musl builds either); type
# declarations, TypeScript sources, source maps and Markdown, which Node.js
# does not load from node_modules; protobufjs's bundled pbjs/pbts tool chain
# (19 MB; sparkplug-payload loads only protobufjs/minimal). Licences stay.
mods="$lib/node_modules"
say "pruning node_modules ($(du -sm "$mods" | cut -f1) MB)"
find "$mods/@serialport/bindings-cpp/prebuilds" -mindepth 1 -maxdepth 1 ! -name "linux-$cpu" -exec rm -rf {} +
find "$mods/@serialport/bindings-cpp/prebuilds" -name '*.musl.node' -delete
find "$mods/@koromix" -mindepth 2 -maxdepth 2 -type d -name 'musl_*' -exec rm -rf {} +
# koffi's build-from-source kit (src, vendor, cnoke.cjs: its install script, not run)
rm -rf "$mods/koffi/src" "$mods/koffi/vendor" "$mods/koffi/doc" "$mods/koffi/cnoke.cjs" "$mods/protobufjs/cli"
# pino's documentation site, which loads scripts from CDNs
rm -f "$mods/pino/index.html"
find "$mods" -type f \( -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o -name '*.map' -o -name '*.md' -o -name '*.markdown' \) \
  ! -iname 'licen[cs]e*' ! -iname 'copying*' -delete
find "$mods" -type f \( -name '.npmignore' -o -name '.gitignore' -o -name '.gitattributes' -o -name '.eslintrc*' -o -name '.prettierrc*' -o -name '.travis.yml' -o -name '.editorconfig' \) -delete
find "$mods" -type d \( -name .husky -o -name .github \) -prune -exec rm -rf {} +
find "$mods" -type d -empty -delete
say "node_modules: $(du -sm "$mods" | cut -f1) MB"

# native code of another CPU would not load (and lintian calls it an error);
# the newest glibc symbol version the native modules need is the libc6 dependency
want="$(case "$cpu" in x64) echo 'X86-64' ;; arm64) echo 'AArch64' ;; arm) echo 'ARM$' ;; esac)"
glibc=2.17
while IFS= read -r -d '' f; do
  readelf -h "$f" | grep -Eq "Machine: .*($want)" || die "not built for $cpu: ${f#"$root"}"
  v="$(readelf -V "$f" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)"
  glibc="$(printf '%s\n%s\n' "$glibc" "${v:-0}" | sort -V | tail -1)"
done < <(find "$lib" -type f -name '*.node' -print0)

# /usr/bin/edgegate: the program's path relative to the wrapper, so that an
# unpacked package (dpkg-deb -x) runs where it lies; node's flags from the
# bin's first line (#!/usr/bin/env -S node FLAGS), one place for both
flags="$(sed -n '1s|^#!/usr/bin/env -S node ||p' dist/gateway/cli/main.js)"
[ -n "$flags" ] || die "no node flags on the first line of dist/gateway/cli/main.js"
mkdir -p "$root/usr/bin"
cat > "$root/usr/bin/edgegate" <<EOF
#!/bin/sh
# edgegate from the Debian package: the program is in /usr/lib/edgegate.
# exec: node keeps the PID systemd started (the unit's NotifyAccess=main).
lib="\$(dirname "\$(readlink -f "\$0")")/../lib/edgegate"
exec /usr/bin/node $flags "\$lib/dist/gateway/cli/main.js" "\$@"
EOF

# the unit, with the Debian package's paths
mkdir -p "$root/lib/systemd/system"
sed -e 's|^ExecStart=/usr/local/bin/edgegate |ExecStart=/usr/bin/edgegate |' \
    -e 's|^Documentation=.*|Documentation=man:edgegate(1) file:/usr/share/doc/edgegate/README.md.gz|' \
    -e 's|^# Installed by systemd/install.sh;|# Installed by the Debian package;|' \
    "$pkg/systemd/edgegate.service" > "$root/lib/systemd/system/edgegate.service"
grep -q '^ExecStart=/usr/bin/edgegate run ' "$root/lib/systemd/system/edgegate.service" || die "ExecStart= of the unit was not rewritten"

# the configuration: the Raspberry Pi example, a conffile
mkdir -p "$root/etc/edgegate"
sed -e '1,2s|^# /etc/edgegate/config.yaml as systemd/install.sh creates it: edit it, check|# /etc/edgegate/config.yaml as the Debian package installs it: edit it, check|' \
    "$pkg/config/examples/raspberry-pi.yaml" > "$root/etc/edgegate/config.yaml"

# documentation (Debian policy: compressed when larger than 4 kB; gzip -n for reproducible builds)
mkdir -p "$doc/examples" "$root/usr/share/man/man1"
cp "$pkg/README.md" "$doc/"
for d in "$pkg"/drivers/*/; do
  mkdir -p "$doc/drivers/$(basename "$d")"
  cp "$d/README.md" "$doc/drivers/$(basename "$d")/"
done
cp "$pkg/config/examples/"*.yaml "$doc/examples/"
cp "$pkg/CHANGELOG.md" "$doc/changelog"
sed -e "s|@VERSION@|$version|g" -e "s|@DATE@|$(date -u -d "$release_date" '+%d %B %Y')|g" packaging/debian/edgegate.1 > "$root/usr/share/man/man1/edgegate.1"
{
  printf 'edgegate (%s) unstable; urgency=medium\n\n' "$version"
  printf '  * Release %s; what changed: /usr/share/doc/edgegate/changelog.gz\n\n' "$version"
  printf ' -- %s  %s\n' "$maintainer" "$(date -u -R -d "$release_date 12:00")"
} > "$doc/changelog.Debian"
{
  cat packaging/debian/copyright.head
  sed 's/^$/./; s/^/ /' "$pkg/LICENSE" | sed -n '/Permission is hereby granted/,$p'
} > "$doc/copyright"
gzip -9n "$doc/changelog" "$doc/changelog.Debian" "$root/usr/share/man/man1/edgegate.1"
find "$doc" -type f ! -name copyright ! -name '*.gz' -size +4k -exec gzip -9n {} +

# ownership comes from --root-owner-group; modes: directories and programs
# 0755, everything else 0644 (whatever umask npm and tar ran under)
find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f -exec chmod 0644 {} +
# in node_modules, packages set run bits at random: a script is one that says
# how it runs (#!), and nothing else is
grep -rlZ -m1 '^#!' "$lib" | while IFS= read -r -d '' f; do
  [ "$(head -c 2 "$f")" = '#!' ] && chmod 0755 "$f"
done
chmod 0755 "$root/usr/bin/edgegate"
mkdir -p "$root/usr/share/lintian/overrides"
install -m 0644 packaging/debian/lintian-overrides "$root/usr/share/lintian/overrides/edgegate"

# control files
mkdir -p "$root/DEBIAN"
for s in postinst prerm postrm; do install -m 0755 "packaging/debian/$s" "$root/DEBIAN/$s"; done
echo /etc/edgegate/config.yaml > "$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
installed_kb="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" -e "s|@SIZE@|$installed_kb|" -e "s|@GLIBC@|$glibc|" \
  packaging/debian/control > "$root/DEBIAN/control"

mkdir -p "$out"
deb="$out/edgegate_${version}_${arch}.deb"
say "writing $deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
say "$deb: $(du -k "$deb" | cut -f1) kB, installed $installed_kb kB"
