#!/usr/bin/env bash
# Runs the whole test suite: unit tests, integration tests against SQLite and PostgreSQL, and
# browser tests in Debian's Chromium against the real server. One build serves all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
started=$(date +%s)

scripts/setup.sh test

say "building (server + wasm)"
cargo leptos build

say "unit and integration tests (SQLite and PostgreSQL)"
# The same flags and environment cargo-leptos gave the server build, so the tests reuse its
# compiled dependencies instead of building the whole stack a second time.
export RUSTFLAGS="--cfg erase_components" LEPTOS_OUTPUT_NAME=syncdesk LEPTOS_SITE_ROOT=target/site \
  LEPTOS_SITE_PKG_DIR=pkg LEPTOS_SITE_ADDR=127.0.0.1:3000 LEPTOS_RELOAD_PORT=3001 LEPTOS_LIB_DIR=app \
  LEPTOS_BIN_DIR=. LEPTOS_JS_MINIFY=false LEPTOS_HASH_FILES=false
cargo test -p syncdesk
cargo test -p app --features ssr --lib
unset RUSTFLAGS

say "browser tests"
# A no-op when the tests reused the build; otherwise it puts back the binary cargo-leptos made
# (the server must know the wasm's name, which only cargo-leptos sets at compile time).
cargo leptos build
work=$(mktemp -d)
port=${E2E_PORT:-3100}
# The browser tests run against the demo without its traffic: a simulated CRM and ERP (so orders
# really sync, and unmapped SKUs really become exceptions), on a fresh SQLite database.
export SYNCDESK_DEMO_DB="${work}/e2e.db"
export E2E_PASSWORD="e2e-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
export E2E_ADMIN_EMAIL=admin@e2e.test E2E_OPERATOR_EMAIL=operator@e2e.test E2E_MANAGER_EMAIL=manager@e2e.test
export SHOPIFY_WEBHOOK_SECRET="e2e-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
LEPTOS_SITE_ROOT=target/site SYNCDESK_LISTEN="127.0.0.1:${port}" target/debug/syncdesk demo --no-traffic >"${work}/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 150); do curl -fsS "http://127.0.0.1:${port}/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
export DATABASE_URL="sqlite:${SYNCDESK_DEMO_DB}"
# The simulated ERP's address, for the test that has it refuse SyncDesk's credentials.
E2E_ERP_URL=$(sed -n 's/.*and ERP at \(http[^ ]*\)\.$/\1/p' "${work}/server.log" | head -n1)
export E2E_ERP_URL
printf '%s\n' "$E2E_PASSWORD" | target/debug/syncdesk user add --email "$E2E_ADMIN_EMAIL" --name "Ada Admin" \
  --role admin --role operator --role steward --role manager >/dev/null
printf '%s\n' "$E2E_PASSWORD" | target/debug/syncdesk user add --email "$E2E_OPERATOR_EMAIL" --name "Oli Operator" \
  --role operator >/dev/null
printf '%s\n' "$E2E_PASSWORD" | target/debug/syncdesk user add --email "$E2E_MANAGER_EMAIL" --name "Max Manager" \
  --role manager >/dev/null
if ! (cd end2end && E2E_BASE_URL="http://127.0.0.1:${port}" npx playwright test); then
  echo "--- server log ---"; tail -n 50 "${work}/server.log"; exit 1
fi

say "all tests passed in $(( $(date +%s) - started )) s"
