#!/usr/bin/env bash
# tus-js-client against /api/uploads: abort and resume, then a duplicate whose refusal
# must be one request (scripts/clients/ts/src/tus.ts). Alone: starts its own server;
# with BASE_URL, TOKEN and PROJECT_ID set, uses that one.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
run_under_server "$@"
build_typescript
node "$clients_dir/ts/dist/tus.js"
