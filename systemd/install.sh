#!/usr/bin/env bash
# Installs edgegate as a systemd service on Raspberry Pi OS / Debian, from a
# built checkout (`npm install` there builds it). Running it again upgrades in
# place and keeps the configuration. See the README, "Run on a Raspberry Pi".
#
#   sudo systemd/install.sh                      install or upgrade, enable, (re)start, show the status
#   sudo systemd/install.sh --no-start           install and enable, start later
#   sudo systemd/install.sh --uninstall          stop, disable, remove the program and the unit
#                                                (keeps /etc/edgegate and /var/lib/edgegate)
#   sudo systemd/install.sh --uninstall --purge  ... and the configuration, credentials and state
#   systemd/install.sh --root DIR [...]          the same into DIR as if it were /; nothing is
#                                                started, root is not needed (used by the tests)
#   --from DIR                                   the built checkout to install (default: this one)
#
# Environment: NODE and NPM name the programs to use (default: from PATH).
set -euo pipefail

ROOT=""
ACTION=install
START=1
PURGE=0
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE="${NODE:-node}"
NPM="${NPM:-npm}"

LIB=/usr/local/lib/edgegate
BIN=/usr/local/bin/edgegate
UNIT=/etc/systemd/system/edgegate.service
WANTS=/etc/systemd/system/multi-user.target.wants/edgegate.service
CONF=/etc/edgegate
CREDENTIALS=(mqtt-password opcua-password)

say() { printf 'edgegate-install: %s\n' "$*"; }
die() { say "error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT="$(mkdir -p "$2" && cd "$2" && pwd)"; shift 2 ;;
    --from) [ $# -ge 2 ] || die "--from needs a directory"; SRC="$(cd "$2" && pwd)"; shift 2 ;;
    --uninstall) ACTION=uninstall; shift ;;
    --purge) PURGE=1; shift ;;
    --no-start) START=0; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option \"$1\" (see --help)" ;;
  esac
done
[ "$ROOT" = "/" ] && ROOT=""
if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then die "run it as root (sudo), or into a directory with --root DIR"; fi

# the service manager of the real system, or systemctl's offline mode on a tree
sysctl() {
  if [ -n "$ROOT" ]; then
    command -v systemctl >/dev/null 2>&1 && systemctl --root="$ROOT" "$@"
  else
    systemctl "$@"
  fi
}

check_node() {
  local path version
  path="$(command -v "$NODE" 2>/dev/null)" || die "Node.js 20 or newer is needed and \"$NODE\" was not found. On Raspberry Pi OS / Debian: install the nodejs package of NodeSource's 20.x (or newer) repository, or the official Linux build (arm64 or armv7l) under /usr/local."
  version="$("$path" -p 'process.versions.node')" || die "could not run $path"
  [ "${version%%.*}" -ge 20 ] 2>/dev/null || die "Node.js $version at $path is too old: 20 or newer is needed (Debian 12 ships 18; use NodeSource's 20.x or newer)."
  case "$path" in
    /home/*|/root/*) die "Node.js at $path is in a home directory, which the service cannot see (ProtectHome=yes): install Node.js system-wide" ;;
  esac
  NODE_BIN="$path"
  say "Node.js $version at $NODE_BIN"
}

install_program() {
  [ -f "$SRC/dist/gateway/cli/main.js" ] || die "$SRC is not built: run \"npm install\" there first"
  local dest="$ROOT$LIB" staging="$ROOT$LIB.new"
  rm -rf "$staging"
  mkdir -p "$staging/dist" "$staging/config" "$staging/systemd"
  cp "$SRC/package.json" "$SRC/package-lock.json" "$SRC/README.md" "$staging/"
  cp -R "$SRC/dist/gateway" "$SRC/dist/drivers" "$SRC/dist/config" "$staging/dist/"
  cp -R "$SRC/config/examples" "$staging/config/"
  cp "$SRC/systemd/edgegate.service" "$SRC/systemd/install.sh" "$staging/systemd/"
  say "installing the runtime dependencies (npm ci --omit=dev)"
  # no install scripts: every native part (serialport, koffi) ships prebuilt for arm, arm64 and x64
  (cd "$staging" && "$NPM" ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error) || die "npm ci failed; the installed version (if any) is unchanged"
  # swap in one step, so that a failed upgrade leaves the old version running
  rm -rf "$dest.old"
  [ -d "$dest" ] && mv "$dest" "$dest.old"
  mv "$staging" "$dest"
  rm -rf "$dest.old"
  mkdir -p "$(dirname "$ROOT$BIN")"
  # exec: node keeps the PID systemd started, so that it is the main process (NotifyAccess=main)
  # a 1 MiB young generation keeps RSS ~30 MB lower under load for ~1 % more CPU (see README)
  printf '#!/bin/sh\nexec %s --max-semi-space-size=1 %s/dist/gateway/cli/main.js "$@"\n' "$NODE_BIN" "$LIB" > "$ROOT$BIN.new"
  chmod 0755 "$ROOT$BIN.new"
  mv "$ROOT$BIN.new" "$ROOT$BIN"
  say "installed $LIB and $BIN"
}

install_config() {
  mkdir -p "$ROOT$CONF/credentials"
  chmod 0755 "$ROOT$CONF"
  chmod 0700 "$ROOT$CONF/credentials"
  if [ -e "$ROOT$CONF/config.yaml" ]; then
    say "kept $CONF/config.yaml"
  else
    install -m 0644 "$SRC/config/examples/raspberry-pi.yaml" "$ROOT$CONF/config.yaml"
    say "created $CONF/config.yaml from the example: edit it for your devices and broker"
  fi
  # LoadCredential= fails the start when its file is missing: an empty one means "no password"
  local c
  for c in "${CREDENTIALS[@]}"; do
    [ -e "$ROOT$CONF/credentials/$c" ] || install -m 0600 /dev/null "$ROOT$CONF/credentials/$c"
  done
}

install_unit() {
  mkdir -p "$(dirname "$ROOT$UNIT")"
  install -m 0644 "$SRC/systemd/edgegate.service" "$ROOT$UNIT"
  if [ -n "$ROOT" ]; then
    if ! sysctl enable edgegate.service >/dev/null 2>&1; then
      mkdir -p "$(dirname "$ROOT$WANTS")"
      ln -sfn "$UNIT" "$ROOT$WANTS"
    fi
    say "installed and enabled $UNIT under $ROOT"
    return
  fi
  systemctl daemon-reload
  systemctl enable edgegate.service
  if [ "$START" = 0 ]; then
    say "enabled; start it with: sudo systemctl start edgegate"
  # with the credential files where systemd will hand them over
  elif ! CREDENTIALS_DIRECTORY="$CONF/credentials" STATE_DIRECTORY=/var/lib/edgegate "$BIN" validate --config "$CONF/config.yaml"; then
    say "not started: fix $CONF/config.yaml, then: sudo systemctl restart edgegate"
  else
    # restart: an upgrade replaces a running version
    systemctl restart edgegate.service
    sleep 2
    systemctl --no-pager --full status edgegate.service || true
  fi
  say "logs: journalctl -u edgegate -f -o cat | npx pino-pretty"
}

uninstall() {
  if [ -n "$ROOT" ]; then
    sysctl disable edgegate.service >/dev/null 2>&1 || true
  elif systemctl cat edgegate.service >/dev/null 2>&1; then
    systemctl disable --now edgegate.service || true
  fi
  rm -f "$ROOT$WANTS" "$ROOT$UNIT" "$ROOT$BIN"
  rm -rf "$ROOT$LIB" "$ROOT$LIB.new" "$ROOT$LIB.old"
  [ -z "$ROOT" ] && systemctl daemon-reload
  say "removed the program and the unit"
  if [ "$PURGE" = 1 ]; then
    # DynamicUser= keeps the state under /var/lib/private
    rm -rf "$ROOT$CONF" "$ROOT/var/lib/edgegate" "$ROOT/var/lib/private/edgegate"
    say "removed $CONF and /var/lib/edgegate"
  else
    say "kept $CONF and /var/lib/edgegate (--uninstall --purge removes them)"
  fi
}

if [ "$ACTION" = uninstall ]; then
  uninstall
else
  check_node
  install_program
  install_config
  install_unit
fi
