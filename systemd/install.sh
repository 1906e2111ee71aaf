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
#   --dry-run                                    check, then print what would be done; change nothing
#   --from DIR                                   the built checkout to install (default: this one)
#   --root DIR                                   DIR stands for /; root is not needed. systemd counts
#                                                as running when DIR/run/systemd/system exists (as on
#                                                a booted system); otherwise DIR is prepared as an
#                                                image: enabled offline, nothing started
#
# Before anything is changed it checks: root, systemd running, Node.js 20 or
# newer, a built checkout. A failed install is rolled back: the files it
# replaced are put back, the ones it created removed, and a service that ran
# before runs the old version again.
# Environment: NODE and NPM name the programs to use (default: from PATH).
set -euo pipefail

ROOT=""
ACTION=install
START=1
PURGE=0
DRY=0
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE="${NODE:-node}"
NPM="${NPM:-npm}"

LIB=/usr/local/lib/edgegate
BIN=/usr/local/bin/edgegate
UNIT=/etc/systemd/system/edgegate.service
WANTS=/etc/systemd/system/multi-user.target.wants/edgegate.service
CONF=/etc/edgegate

say() { printf 'edgegate-install: %s\n' "$*"; }
die() { say "error: $*" >&2; exit 1; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT="$(realpath -m "$2")"; shift 2 ;;
    --from) [ $# -ge 2 ] || die "--from needs a directory"; SRC="$(cd "$2" && pwd)"; shift 2 ;;
    --uninstall) ACTION=uninstall; shift ;;
    --purge) PURGE=1; shift ;;
    --no-start) START=0; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option \"$1\" (see --help)" ;;
  esac
done
[ "$ROOT" = "/" ] && ROOT=""

# ------------------------------------------------------------ checks (change nothing)

# sd_booted(): systemd runs when /run/systemd/system exists
LIVE=0
[ -d "$ROOT/run/systemd/system" ] && LIVE=1

check_system() {
  if [ -z "$ROOT" ] && [ "$LIVE" = 0 ]; then
    die "systemd is not running on this machine (no /run/systemd/system): edgegate is installed as a systemd service. To prepare an image, use --root DIR"
  fi
  if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then die "run it as root (sudo), or into a directory with --root DIR"; fi
  if [ "$LIVE" = 1 ]; then command -v systemctl >/dev/null 2>&1 || die "systemd runs, but systemctl was not found"; fi
}

check_node() {
  local path version arch
  path="$(command -v "$NODE" 2>/dev/null)" || die "Node.js 20 or newer is needed and \"$NODE\" was not found. On Raspberry Pi OS / Debian: install the nodejs package of NodeSource's 20.x (or newer) repository, or the official Linux build (arm64 or armv7l) under /usr/local."
  version="$("$path" -p 'process.versions.node')" || die "could not run $path"
  [ "${version%%.*}" -ge 20 ] 2>/dev/null || die "Node.js $version at $path is too old: 20 or newer is needed (Debian 12 ships 18; use NodeSource's 20.x or newer)."
  # the CPUs with official Node.js builds that edgegate is tested on (README, "Supported platforms")
  arch="$("$path" -p 'process.arch === "arm" ? "armv" + process.config.variables.arm_version : process.arch')" || die "could not run $path"
  case "$arch" in
    x64|arm64|armv7) ;;
    armv6) die "Node.js at $path is an ARMv6 build (Raspberry Pi 1, Zero, Zero W): edgegate supports x86-64, arm64 and armv7 (Pi 2 and newer, Zero 2 W), where official Node.js builds exist. On a 32-bit Raspberry Pi OS on a Pi 3 or newer, install the armv7l build." ;;
    *) say "warning: Node.js at $path runs on $arch, which edgegate is not tested on (x86-64, arm64 and armv7 are): it may work" ;;
  esac
  case "$path" in
    /home/*|/root/*) die "Node.js at $path is in a home directory, which the service cannot see (ProtectHome=yes): install Node.js system-wide" ;;
  esac
  NODE_BIN="$path"
  say "Node.js $version at $NODE_BIN"
}

check_source() {
  [ -f "$SRC/dist/gateway/cli/main.js" ] || die "$SRC is not built: run \"npm install\" there first"
  local f
  for f in package.json config/examples/raspberry-pi.yaml systemd/edgegate.service; do
    [ -f "$SRC/$f" ] || die "$SRC/$f is missing"
  done
  command -v "$NPM" >/dev/null 2>&1 || die "npm (\"$NPM\") was not found"
  # the credential files the unit loads: LoadCredential= fails the start when one is missing
  mapfile -t CREDENTIALS < <(sed -n 's/^LoadCredential=\([^:]*\):.*/\1/p' "$SRC/systemd/edgegate.service")
}

# ------------------------------------------------------------ changes, journaled

# what the install changed, newest last: "created PATH" or "moved PATH BACKUP"
JOURNAL=()
CHANGING=0
COMMITTED=0
ENABLED_BY_US=0
WAS_ACTIVE=0
# systemd was told about the new unit: a rollback tells it about the old one
SYSTEMD_TOLD=0

journal() { local IFS=$'\t'; JOURNAL+=("$*"); }

act() {
  if [ "$DRY" = 1 ]; then say "would run: $*"; return 0; fi
  "$@"
}

make_dir() { # DIR MODE: created (and journaled) when missing
  [ -d "$1" ] && return 0
  if [ "$DRY" = 1 ]; then say "would create $1/"; return 0; fi
  local top="$1"
  while [ ! -d "$(dirname "$top")" ]; do top="$(dirname "$top")"; done
  mkdir -p -m "$2" "$1"
  journal created "$top"
}

# puts NEW (a file or directory next to TARGET) in place of TARGET; the old one is kept until the end
put() { # NEW TARGET
  if [ -e "$2" ] || [ -L "$2" ]; then
    rm -rf "$2.rollback"
    mv "$2" "$2.rollback"
    journal moved "$2" "$2.rollback"
  else
    journal created "$2"
  fi
  mv "$1" "$2"
}

rollback() {
  say "install failed: rolling back" >&2
  local i entry kind path backup
  # disabled while its unit file is still there: systemctl cannot disable a unit it no longer finds
  if [ "$ENABLED_BY_US" = 1 ]; then
    [ "$SYSTEMD_TOLD" = 1 ] && { systemctl disable edgegate.service || true; }
    rm -f "$ROOT$WANTS"
  fi
  for ((i = ${#JOURNAL[@]} - 1; i >= 0; i--)); do
    entry="${JOURNAL[$i]}"
    IFS=$'\t' read -r kind path backup <<<"$entry"
    rm -rf "$path"
    if [ "$kind" = moved ]; then mv "$backup" "$path"; fi
  done
  rm -rf "$ROOT$LIB.new" "$ROOT$BIN.new" "$ROOT$UNIT.new"
  if [ "$SYSTEMD_TOLD" = 1 ]; then
    systemctl daemon-reload || true
    # the version that ran before runs again
    [ "$WAS_ACTIVE" = 1 ] && { systemctl restart edgegate.service || true; }
  fi
  say "rolled back: the system is as it was before" >&2
}

MAIN_PID=$BASHPID
on_exit() {
  local code=$?
  # a subshell (the npm ci below) inherits the trap: only the installer itself rolls back
  [ "$BASHPID" = "$MAIN_PID" ] || exit "$code"
  if [ "$code" != 0 ] && [ "$CHANGING" = 1 ] && [ "$COMMITTED" = 0 ]; then rollback; fi
  exit "$code"
}
trap on_exit EXIT

finish() {
  COMMITTED=1
  local entry kind path backup
  for entry in "${JOURNAL[@]}"; do
    IFS=$'\t' read -r kind path backup <<<"$entry"
    if [ "$kind" = moved ]; then rm -rf "$backup"; fi
  done
}

# ------------------------------------------------------------ install

stage_program() {
  local staging="$ROOT$LIB.new"
  if [ "$DRY" = 1 ]; then
    say "would copy the built program from $SRC to $ROOT$LIB.new, run \"$NPM ci --omit=dev --ignore-scripts\" there, and put it in place of $ROOT$LIB"
    return 0
  fi
  make_dir "$(dirname "$ROOT$LIB")" 0755
  rm -rf "$staging"
  mkdir -p "$staging/dist" "$staging/config" "$staging/systemd"
  cp "$SRC/package.json" "$SRC/README.md" "$staging/"
  cp -R "$SRC/dist/gateway" "$SRC/dist/drivers" "$SRC/dist/config" "$staging/dist/"
  cp -R "$SRC/config/examples" "$staging/config/"
  cp "$SRC/systemd/edgegate.service" "$SRC/systemd/install.sh" "$staging/systemd/"
  # a checkout has the lock file; an npm package (npm install -g edgegate) has none
  local install=install
  if [ -f "$SRC/package-lock.json" ]; then cp "$SRC/package-lock.json" "$staging/"; install=ci; fi
  say "installing the runtime dependencies (npm $install --omit=dev)"
  # no install scripts: every native part (serialport, koffi) ships prebuilt for arm, arm64 and x64
  (cd "$staging" && "$NPM" "$install" --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error) || die "npm $install failed"
}

install_program() {
  if [ "$DRY" = 0 ]; then
    put "$ROOT$LIB.new" "$ROOT$LIB"
    make_dir "$(dirname "$ROOT$BIN")" 0755
    # exec: node keeps the PID systemd started, so that it is the main process (NotifyAccess=main)
    # a 2 MiB young generation: RSS stays low on a serial gateway and busy OPC UA tags promote less (see README); one V8 helper
    # thread instead of four saves the malloc arenas the others would fill, ~6 MB (see README)
    printf '#!/bin/sh\nexec %s --max-semi-space-size=2 --v8-pool-size=1 %s/dist/gateway/cli/main.js "$@"\n' "$NODE_BIN" "$LIB" > "$ROOT$BIN.new"
    chmod 0755 "$ROOT$BIN.new"
    put "$ROOT$BIN.new" "$ROOT$BIN"
  else
    say "would write $ROOT$BIN (runs $NODE_BIN on $LIB/dist/gateway/cli/main.js)"
  fi
  say "installed $LIB and $BIN"
}

install_config() {
  make_dir "$ROOT$CONF" 0755
  make_dir "$ROOT$CONF/credentials" 0700
  if [ -e "$ROOT$CONF/config.yaml" ]; then
    say "kept $CONF/config.yaml"
  elif [ "$DRY" = 1 ]; then
    say "would create $ROOT$CONF/config.yaml from config/examples/raspberry-pi.yaml"
  else
    install -m 0644 "$SRC/config/examples/raspberry-pi.yaml" "$ROOT$CONF/config.yaml.new"
    put "$ROOT$CONF/config.yaml.new" "$ROOT$CONF/config.yaml"
    say "created $CONF/config.yaml from the example: edit it for your devices and broker"
  fi
  # an empty credential file means "no password"
  local c
  for c in "${CREDENTIALS[@]}"; do
    [ -e "$ROOT$CONF/credentials/$c" ] && continue
    if [ "$DRY" = 1 ]; then say "would create the empty credential file $ROOT$CONF/credentials/$c"; continue; fi
    install -m 0600 /dev/null "$ROOT$CONF/credentials/$c.new"
    put "$ROOT$CONF/credentials/$c.new" "$ROOT$CONF/credentials/$c"
  done
}

install_unit() {
  make_dir "$(dirname "$ROOT$UNIT")" 0755
  if [ "$DRY" = 1 ]; then
    say "would install $ROOT$UNIT from systemd/edgegate.service"
  else
    install -m 0644 "$SRC/systemd/edgegate.service" "$ROOT$UNIT.new"
    put "$ROOT$UNIT.new" "$ROOT$UNIT"
  fi
  if [ "$LIVE" = 0 ]; then
    # an image: systemctl's offline mode, or the link it would make
    if [ -e "$ROOT$WANTS" ] || [ -L "$ROOT$WANTS" ]; then :
    elif [ "$DRY" = 1 ]; then say "would enable edgegate.service under $ROOT (link $WANTS)"
    elif ! systemctl --root="$ROOT" enable edgegate.service >/dev/null 2>&1 || [ ! -L "$ROOT$WANTS" ]; then
      make_dir "$(dirname "$ROOT$WANTS")" 0755
      ln -sfn "$UNIT" "$ROOT$WANTS.new"
      put "$ROOT$WANTS.new" "$ROOT$WANTS"
    else
      journal created "$ROOT$WANTS"
    fi
    say "installed and enabled $UNIT under $ROOT; nothing started (systemd does not run there)"
    return 0
  fi
  systemctl is-enabled --quiet edgegate.service 2>/dev/null || ENABLED_BY_US=1
  [ "$DRY" = 1 ] || SYSTEMD_TOLD=1
  act systemctl daemon-reload || die "systemctl daemon-reload failed"
  act systemctl enable edgegate.service || die "systemctl enable edgegate.service failed"
}

start_service() {
  [ "$LIVE" = 1 ] || return 0
  if [ "$START" = 0 ]; then
    say "enabled; start it with: sudo systemctl start edgegate"
    return 0
  fi
  if [ "$DRY" = 1 ]; then
    say "would validate $CONF/config.yaml and, if it is valid, run: systemctl restart edgegate.service"
    return 0
  fi
  # the installed program, with the credential files where systemd will hand them over
  if ! CREDENTIALS_DIRECTORY="$ROOT$CONF/credentials" STATE_DIRECTORY="$ROOT/var/lib/edgegate" \
      "$NODE_BIN" "$ROOT$LIB/dist/gateway/cli/main.js" validate --config "$ROOT$CONF/config.yaml"; then
    say "not started: fix $CONF/config.yaml, then: sudo systemctl restart edgegate"
    return 0
  fi
  # restart: an upgrade replaces a running version; Type=notify: it returns once the gateway is ready, or fails
  systemctl restart edgegate.service || die "the service did not start (journalctl -u edgegate -n 50 says why)"
  systemctl --no-pager --full status edgegate.service || true
}

do_install() {
  check_system
  check_node
  check_source
  [ "$DRY" = 1 ] && say "dry run: nothing is changed"
  if [ "$LIVE" = 1 ] && systemctl is-active --quiet edgegate.service 2>/dev/null; then WAS_ACTIVE=1; fi
  [ "$DRY" = 1 ] || CHANGING=1
  stage_program
  install_program
  install_config
  install_unit
  start_service
  [ "$DRY" = 1 ] && return 0
  finish
  say "logs: journalctl -u edgegate -f -o cat | npx pino-pretty"
}

# ------------------------------------------------------------ uninstall

do_uninstall() {
  if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then die "run it as root (sudo), or into a directory with --root DIR"; fi
  [ "$DRY" = 1 ] && say "dry run: nothing is changed"
  if [ "$LIVE" = 1 ]; then
    if systemctl cat edgegate.service >/dev/null 2>&1; then act systemctl disable --now edgegate.service || true; fi
  elif [ "$DRY" = 1 ]; then
    if [ -e "$ROOT$UNIT" ]; then say "would run: systemctl --root=$ROOT disable edgegate.service"; fi
  elif [ -e "$ROOT$UNIT" ]; then
    systemctl --root="$ROOT" disable edgegate.service >/dev/null 2>&1 || true
  fi
  local p
  for p in "$ROOT$WANTS" "$ROOT$UNIT" "$ROOT$BIN" "$ROOT$LIB" "$ROOT$LIB.new" "$ROOT$LIB.rollback" "$ROOT$BIN.rollback" "$ROOT$UNIT.rollback"; do
    if [ -e "$p" ] || [ -L "$p" ]; then act rm -rf "$p"; fi
  done
  if [ "$LIVE" = 1 ]; then act systemctl daemon-reload; fi
  say "removed the program and the unit"
  if [ "$PURGE" = 1 ]; then
    # DynamicUser= keeps the state under /var/lib/private
    for p in "$ROOT$CONF" "$ROOT/var/lib/edgegate" "$ROOT/var/lib/private/edgegate"; do
      if [ -e "$p" ] || [ -L "$p" ]; then act rm -rf "$p"; fi
    done
    say "removed $CONF and /var/lib/edgegate"
  else
    say "kept $CONF and /var/lib/edgegate (--uninstall --purge removes them)"
  fi
}

if [ "$ACTION" = uninstall ]; then do_uninstall; else do_install; fi
