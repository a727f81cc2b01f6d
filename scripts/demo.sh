#!/usr/bin/env bash
# Builds SyncDesk and starts the demo: a fresh SQLite database, one account per role, the URL
# and sign-in details printed. Pass flags through, e.g. scripts/demo.sh --listen 127.0.0.1:8080
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
cargo leptos build
export LEPTOS_SITE_ROOT=target/site
exec target/debug/syncdesk demo "$@"
