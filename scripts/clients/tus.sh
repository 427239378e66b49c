#!/usr/bin/env bash
# tus-js-client against /api/uploads (scripts/clients/ts/src/tus.ts): abort and resume,
# then a duplicate whose refusal must be one request, on one node (SQLite); then, on two
# nodes sharing uploads (MULTI_NODE=true on one PostgreSQL, Redis and emulated Cloud
# Storage bucket), an upload begun on one node and resumed on the other.
# Alone: starts its own servers (the two-node run needs PostgreSQL, Redis and
# fake-gcs-server, at TEST_DATABASE_URL, TEST_REDIS_URL and TEST_GCS_ENDPOINT, defaulting
# as in scripts/test); with BASE_URL, TOKEN and PROJECT_ID set, uses that server
# (and SECOND_BASE_URL, when set, as the node to resume on).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
if [ -z "${BASE_URL:-}" ]; then
  need python3 "install Python 3 (apt-get install python3 python3-venv)"
  python3 "$clients_dir/with_server.py" -- "$0"
  export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
  export TEST_GCS_ENDPOINT="${TEST_GCS_ENDPOINT:-http://127.0.0.1:4443}"
  exec python3 "$clients_dir/with_server.py" --nodes 2 -- "$0"
fi
: "${TOKEN:?$script_name: TOKEN is not set (BASE_URL is; set both, or neither)}"
: "${PROJECT_ID:?$script_name: PROJECT_ID is not set (BASE_URL is; set both, or neither)}"
build_typescript
node "$clients_dir/ts/dist/tus.js"
