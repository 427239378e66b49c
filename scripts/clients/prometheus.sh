#!/usr/bin/env bash
# The dashboards and alert rules against Debian's Prometheus (installed by apt when
# missing): `promtool check rules` on dashboards/alerts.yml; `promtool test rules` on
# dashboards/alerts_test.yml (every alert, with series that fire it and series that must
# not); then a Prometheus scraping a real server every second under a short mixed load,
# asked for every panel query of dashboards/*.json and for the state of every rule
# (scripts/clients/prometheus_check.py); then the faults of a second server, each firing
# its alert (scripts/clients/prometheus_faults.py: needs psql, redis-server and the
# PostgreSQL of TEST_DATABASE_URL). Alone: starts its own server; with BASE_URL,
# TOKEN and PROJECT_ID set, uses that one.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  echo "$script_name: installing Debian's prometheus (for prometheus and promtool)" >&2
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1; }; } \
    || die "prometheus is missing and could not be installed (apt-get install prometheus)"
fi
run_under_server "$@"

# PyYAML: the clients' venv has it (datasets needs it); else the system's Python.
py="${ALTA_DATASETS_PYTHON:-python3}"
"$py" -c 'import yaml' 2>/dev/null || die "PyYAML is missing for $py (pip install pyyaml, or run scripts/test)"

promtool check rules "$repo_dir/dashboards/alerts.yml" >&2

work="$(mktemp -d)"
prom_pid=""
cleanup() {
  [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# docker-compose.yml's Prometheus configuration, with its rules where this checkout has them,
# and its Grafana provisioning files (YAML with the keys Grafana reads).
sed "s#/etc/prometheus/alta/alerts.yml#$repo_dir/dashboards/alerts.yml#" \
  "$repo_dir/dashboards/compose/prometheus.yml" >"$work/compose-prometheus.yml"
promtool check config "$work/compose-prometheus.yml" >&2
"$py" - "$repo_dir/dashboards/compose" <<'PY' || die "the Grafana provisioning files are not what Grafana reads"
import sys, yaml
d = sys.argv[1]
sources = yaml.safe_load(open(f"{d}/grafana-datasources.yml"))["datasources"]
assert sources[0]["type"] == "prometheus" and sources[0]["url"].startswith("http://prometheus:9090")
providers = yaml.safe_load(open(f"{d}/grafana-dashboards.yml"))["providers"]
assert providers[0]["type"] == "file" and providers[0]["options"]["path"]
PY
"$py" "$clients_dir/prometheus_check.py" strip "$repo_dir/dashboards/alerts.yml" "$work/alerts.yml"
cp "$repo_dir/dashboards/alerts_test.yml" "$work/"
promtool test rules "$work/alerts_test.yml" >&2

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [alerts.yml]
scrape_configs:
  - job_name: alta
    static_configs:
      - targets: ["${BASE_URL#http://}"]
EOF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$port" >"$work/prometheus.log" 2>&1 &
prom_pid=$!
"$py" "$clients_dir/prometheus_check.py" check --prometheus "http://127.0.0.1:$port" \
  --base "$BASE_URL" --token "$TOKEN" --project "$PROJECT_ID" --dashboards "$repo_dir/dashboards" \
  || { tail -20 "$work/prometheus.log" >&2; die "the dashboards or the rules failed against Prometheus"; }
# The faults of a second server (a database and a Redis of its own) fire the alerts they must.
need psql "install the PostgreSQL client (apt-get install postgresql-client)"
need redis-server "install Redis (apt-get install redis-server)"
: "${TEST_DATABASE_URL:=postgres://postgres@127.0.0.1:5432/postgres}"
TEST_DATABASE_URL="$TEST_DATABASE_URL" "$py" "$clients_dir/prometheus_faults.py" \
  --rules "$repo_dir/dashboards/alerts.yml" || die "an alert did not fire for its fault"
echo "prometheus: ok"
