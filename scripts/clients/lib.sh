# Shared by the scripts in scripts/clients/ (sourced, not run).
clients_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(cd "$clients_dir/../.." && pwd)"
script_name="scripts/clients/$(basename "$0")"
cache_dir="${ALTA_CLIENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/alta-clients}"

die() { echo "$script_name: $*" >&2; exit 1; }

need() { # command, what to install
  command -v "$1" >/dev/null || die "$1 is missing: $2"
}

# Without BASE_URL, run this very script again under with_server.py (a fresh server and
# owner); with it (scripts/test, or a server of your own), go on against that server.
run_under_server() {
  if [ -z "${BASE_URL:-}" ]; then
    need python3 "install Python 3 (apt-get install python3 python3-venv)"
    exec python3 "$clients_dir/with_server.py" -- "$0" "$@"
  fi
  : "${TOKEN:?$script_name: TOKEN is not set (BASE_URL is; set both, or neither)}"
  : "${PROJECT_ID:?$script_name: PROJECT_ID is not set (BASE_URL is; set both, or neither)}"
}

lock_hash() { sha256sum "$1" | cut -c1-16; }

# The npm project in scripts/clients/ts, installed from its package-lock.json (npm ci)
# once per lock file.
ensure_node_project() {
  need node "install Node.js 18 or newer (apt-get install nodejs npm)"
  need npm "install npm (apt-get install npm)"
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  [ "$major" -ge 18 ] || die "Node.js $major is too old: openapi-fetch needs 18 or newer (fetch, FormData, Blob)"
  local stamp="$clients_dir/ts/node_modules/.alta-lock"
  local want
  want="$(lock_hash "$clients_dir/ts/package-lock.json")"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "$script_name: installing scripts/clients/ts from package-lock.json (npm ci)" >&2
    (cd "$clients_dir/ts" && npm ci --no-audit --no-fund --loglevel=error >&2) \
      || die "npm ci failed in scripts/clients/ts: the npm registry must be reachable"
    echo "$want" >"$stamp"
  fi
}

# openapi-typescript types from the served document, then tsc (strict, no output on
# any type error) compiles scripts/clients/ts/src to dist/.
build_typescript() {
  ensure_node_project
  (cd "$clients_dir/ts" && npx --no-install openapi-typescript "$BASE_URL/api/openapi.json" \
      --output src/generated/api.d.ts >&2) || die "openapi-typescript could not read $BASE_URL/api/openapi.json"
  (cd "$clients_dir/ts" && rm -rf dist && npx --no-install tsc --project tsconfig.json --strict) \
    || die "tsc --strict: the TypeScript clients do not type-check against the served document"
}
