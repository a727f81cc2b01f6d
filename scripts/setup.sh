#!/usr/bin/env bash
# Installs what building (and, with `test`, testing) SyncDesk needs, skipping whatever is
# already there, so it is quick on a warm machine. Usage: scripts/setup.sh [build|test]
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-build}"
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

CARGO_LEPTOS_VERSION=0.3.9
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# cargo-leptos 0.3.11 needs a newer rustc; 0.3.9 builds on 1.95. `no_downloads`: use the
# wasm-bindgen on PATH instead of downloading one (downloads cannot work on these machines).
if ! cargo leptos --version 2>/dev/null | grep -q " ${CARGO_LEPTOS_VERSION}"; then
  say "installing cargo-leptos ${CARGO_LEPTOS_VERSION} (about 20 minutes, once)"
  cargo install --locked "cargo-leptos@${CARGO_LEPTOS_VERSION}" --features no_downloads
fi

# The CLI must match the wasm-bindgen crate in Cargo.lock exactly. (Its own lock file pins a
# crate version the registry no longer serves, hence no --locked.)
if ! wasm-bindgen --version 2>/dev/null | grep -q " ${WASM_BINDGEN_VERSION}"; then
  say "installing wasm-bindgen-cli ${WASM_BINDGEN_VERSION}"
  cargo install wasm-bindgen-cli --version "${WASM_BINDGEN_VERSION}"
fi

# jemalloc, the server's allocator, is built from its C sources with make and a C compiler.
if ! command -v make >/dev/null 2>&1 || ! command -v cc >/dev/null 2>&1; then
  say "installing make and a C compiler (for jemalloc)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq make gcc >/dev/null
fi

if [ "$what" = test ]; then
  if ! command -v chromium >/dev/null 2>&1; then
    say "installing Debian's chromium"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  fi
  if [ ! -d end2end/node_modules/@playwright/test ]; then
    say "installing Playwright (no browser download: tests use Debian's chromium)"
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
  if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    say "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  fi
fi
