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

# Google sign-in is off on this server (it would need Google itself): its operations
# answer 501 google_signin_disabled by design, which not_a_server_error counts as a failure.
not_testable=(auth_google_login auth_google_callback auth_google_exchange)

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

# A processed document of the owner's, so that the operations on one document and its job
# (schemathesis.toml gives them DOCUMENT_ID and JOB_ID) read and change real data.
json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
seed_file="$report_dir/seed.txt"
echo "A document the fuzzer may read and correct." >"$seed_file"
DOCUMENT_ID="$(curl -fsS "$BASE_URL/api/documents" -H "authorization: Bearer $TOKEN" \
  -F "project_id=$PROJECT_ID" -F "file=@$seed_file;type=text/plain" | json_field id)" \
  || die "could not upload the seed document"
for _ in $(seq 1 300); do
  seeded="$(curl -fsS "$BASE_URL/api/documents/$DOCUMENT_ID" -H "authorization: Bearer $TOKEN")" \
    || die "could not read the seed document"
  [ "$(json_field status <<<"$seeded")" = ready ] && break
  sleep 0.2
done
[ "$(json_field status <<<"$seeded")" = ready ] || die "the seed document never became ready: $seeded"
JOB_ID="$(json_field job_id <<<"$seeded")"
export DOCUMENT_ID JOB_ID

login_body="$(python3 -c 'import json, os; print(json.dumps({"email": os.environ["OWNER_EMAIL"], "password": os.environ["OWNER_PASSWORD"]}))')" \
  || die "OWNER_EMAIL and OWNER_PASSWORD must be set (with BASE_URL) for the session-ending operations"

status=0
exclude=()
for id in "${not_testable[@]}" "${session_enders[@]}"; do exclude+=(--exclude-operation-id "$id"); done
echo "$script_name: run 1: every operation but ${not_testable[*]} ${session_enders[*]}" >&2
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
# Any failure fails the run; the summary names each (check, operation) once.
if [ "$status" -ne 0 ]; then
  echo "$script_name: failures by check and operation (most frequent answer):" >&2
  python3 "$clients_dir/schemathesis_summary.py" "$report_dir" >&2 || true
  die "schemathesis found failures (listed above; JUnit and NDJSON in $report_dir)"
fi
