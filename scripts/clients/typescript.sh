#!/usr/bin/env bash
# openapi-fetch, typed by openapi-typescript from the served /api/openapi.json, walks the
# API as a frontend does (scripts/clients/ts/src/walk.ts). Alone: starts its own server;
# with BASE_URL, TOKEN and PROJECT_ID set, uses that one.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
run_under_server "$@"
build_typescript
node "$clients_dir/ts/dist/walk.js"
