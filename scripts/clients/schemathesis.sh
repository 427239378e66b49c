#!/usr/bin/env bash
# schemathesis (pinned in requirements.lock) against the served /api/openapi.json: every
# check, all phases (examples, coverage, fuzzing, stateful), a fixed seed, bounded
# examples (schemathesis.toml). Two runs: every operation but those that end the caller's
# session or destroy what the others use, with the owner's token; then those, with a
# session of their own. Alone: starts its own server; with BASE_URL, TOKEN and
# PROJECT_ID (and OWNER_EMAIL, OWNER_PASSWORD for the second session) set, uses that one.
# Reports (JUnit, NDJSON) go to $SCHEMATHESIS_REPORT_DIR (default: a temporary folder).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
run_under_server "$@"

# Operations that end the session they are called with (logout, logout-all, ending a
# session, a password change or reset ends the others) or delete the owner's project:
# run last, with a session of their own.
session_enders=(
  auth_logout auth_logout_all auth_revoke_session auth_password_change auth_password_reset
  project_delete
)

venv="$cache_dir/schemathesis-$(lock_hash "$clients_dir/requirements.lock")"
if [ ! -x "$venv/bin/schemathesis" ]; then
  need python3 "install Python 3 (apt-get install python3 python3-venv)"
  echo "$script_name: installing schemathesis from requirements.lock into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv failed: install python3-venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$clients_dir/requirements.lock" >&2 \
    || { rm -rf "$venv"; die "pip could not install requirements.lock: PyPI must be reachable"; }
fi

report_dir="${SCHEMATHESIS_REPORT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/alta-schemathesis.XXXXXX")}"
mkdir -p "$report_dir"

schemathesis() { # report name, then arguments
  local name="$1"
  shift
  (cd "$report_dir" && SCHEMATHESIS_HOOKS="$clients_dir/schemathesis_hooks.py" "$venv/bin/schemathesis" --no-color --config-file "$clients_dir/schemathesis.toml" \
    run "$BASE_URL/api/openapi.json" \
    --report junit,ndjson --report-dir "$report_dir" \
    --report-junit-path "$report_dir/$name.xml" --report-ndjson-path "$report_dir/$name.ndjson" "$@")
}

login_body="$(python3 -c 'import json, os; print(json.dumps({"email": os.environ["OWNER_EMAIL"], "password": os.environ["OWNER_PASSWORD"]}))')" \
  || die "OWNER_EMAIL and OWNER_PASSWORD must be set (with BASE_URL) for the session-ending operations"

status=0
exclude=()
for id in "${session_enders[@]}"; do exclude+=(--exclude-operation-id "$id"); done
echo "$script_name: run 1: every operation but ${session_enders[*]}" >&2
schemathesis main "${exclude[@]}" || status=1

# Each of them with a fresh session of the owner: one that ended its session leaves the
# next one nothing to test.
for id in "${session_enders[@]}"; do
  TOKEN="$(curl -fsS "$BASE_URL/api/auth/login" -H 'content-type: application/json' -d "$login_body" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')" \
    || die "could not sign the owner in again for $id"
  export TOKEN
  echo "$script_name: run 2: $id, with a session of its own" >&2
  schemathesis "$id" --include-operation-id "$id" || status=1
done

echo "$script_name: reports in $report_dir" >&2
[ "$status" -eq 0 ] || die "schemathesis found failures (above; JUnit and NDJSON in $report_dir)"
