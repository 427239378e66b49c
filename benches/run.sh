#!/usr/bin/env bash
# Runs the throughput driver (benches/throughput.rs) against a throw-away server that this
# script builds, starts and stops itself.
#
#   benches/run.sh [sqlite|postgres] [driver args...]
#
#   benches/run.sh                                  # SQLite in a temp dir, default scenarios
#   benches/run.sh postgres --concurrency 32 --seconds 20
#   benches/run.sh sqlite --scenarios health,me > sqlite.json
#   benches/run.sh sqlite --scenarios upload_1k --concurrency 8 --seconds 10
#   benches/run.sh sqlite --scenarios upload_big --big-mib 1023
#
# The JSON report goes to stdout; everything else (build output, progress, the driver's
# one-line summaries) goes to stderr. After the driver, the server's peak and current
# resident memory (VmHWM / VmRSS) are appended to the stderr summary.
#
# The server runs with MAX_UPLOAD_BYTES = 1100 MiB (room for `upload_big` at its default
# 1023 MiB) and UPLOAD_CONCURRENCY = 8 (uploads beyond that get 503, counted as `busy`).
#
# Environment:
#   CARGO_TARGET_DIR   honoured (binary at ${CARGO_TARGET_DIR:-target}/debug/alta)
#   BENCH_PROFILE      cargo profile for the driver (default: dev, which reuses the debug
#                      build; use `bench` for an optimised driver at the cost of a full
#                      release build of the dependency tree)
#   TMPDIR             where the temp dir (the server's blobs, SQLite's database) goes.
#                      TMPDIR=/dev/shm keeps a run's own file churn out of the figures: on
#                      an ext4 without a journal (as on the 2-core machines these numbers
#                      come from), a file created within minutes of many deletions (the
#                      last run's clean-up) costs the kernel a search past every recently
#                      freed inode. On tmpfs an fsync is free, so SQLite's commits are too.
#   PGHOST PGPORT PGUSER PGPASSWORD
#                      PostgreSQL server used for `postgres` (default 127.0.0.1:5432, postgres)
#   BENCH_REDIS_URL    use this Redis (REDIS_URL is otherwise unset for the server)
#   KEEP_BENCH_DIR=1   keep the temp dir (data and server.log) after the run
#   PROJECT_GROUP_COMMIT_MAX
#                      passed to the server (1 turns group commit off: the "before")
#   ALTA_BIN           run this server binary instead of building one (an older commit's
#                      build, for a before/after comparison in one session)
#   BENCH_UPLOAD_CONCURRENCY
#                      the server's UPLOAD_CONCURRENCY (default 8)
#   BENCH_WITHOUT_ROLLUPS=1
#                      drop the analytics rollup triggers after migrating (the "without" of
#                      what the rollups cost an upload or a decision)
#   BENCH_SQL=FILE     run this SQL file on the database after migrating (postgres only): an
#                      experiment's change (a function replaced, an index dropped) measured
#                      without a build
#   BENCH_PG_QUERY     appended to the server's DATABASE_URL (e.g. '?sslmode=disable')
#   BENCH_DRIVER_BIN   run this driver binary (a `throughput-*` from an earlier
#                      `cargo bench --no-run`) instead of building it
#   BENCH_PERF_OUT=FILE
#                      record where the whole machine's CPU goes while the driver runs
#                      (`perf record -a -e cpu-clock`, for `perf report -i FILE`)
#   BENCH_MIXED=SCENARIO:N,...
#                      a mixed load: one driver per scenario, all at once against the same
#                      server, each with N connections (the other driver arguments, such
#                      as --seconds, go to every one); stdout gets one JSON report per
#                      driver. E.g. BENCH_MIXED=health:40,me:60,upload_1k:40,annotate:40,login:20
#                      (200 clients). Every run prints the server's 5xx answers from
#                      /metrics (`responses` line): a sound server gives none, under any load.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

backend=sqlite
case "${1:-}" in
    postgres | sqlite) backend=$1; shift ;;
esac

target_dir=${CARGO_TARGET_DIR:-target}
# SERVER_PROFILE=release measures an optimised server (a release build of the tree takes
# several minutes the first time); the default debug server is for quick checks only.
server_profile=${SERVER_PROFILE:-debug}
if [ "$server_profile" = release ]; then
    bin="$target_dir/release/alta"
else
    bin="$target_dir/debug/alta"
fi
profile=${BENCH_PROFILE:-dev}

email=bench@example.com
password="bench-Pa55word-$(date +%s)-long"

pg_host=${PGHOST:-127.0.0.1}
pg_port=${PGPORT:-5432}
pg_user=${PGUSER:-postgres}
pg_db=""

work=""
server_pid=""

cleanup() {
    local status=$?
    set +e
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        log "stopping server (pid $server_pid)"
        kill -TERM "$server_pid" 2>/dev/null
        for _ in $(seq 1 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    if [[ -n $pg_db ]]; then
        log "dropping database $pg_db"
        psql -h "$pg_host" -p "$pg_port" -U "$pg_user" -d postgres -q -v ON_ERROR_STOP=1 \
            -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >&2
    fi
    if [[ -n $work ]]; then
        if [[ $status -ne 0 && -f $work/server.log ]]; then
            log "last lines of the server log:"
            tail -n 40 "$work/server.log" >&2
        fi
        if [[ ${KEEP_BENCH_DIR:-0} == 1 ]]; then
            log "kept $work"
        else
            rm -rf "$work"
        fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() {
    # A successful connect means something is listening.
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_port() {
    local candidate
    for _ in $(seq 1 50); do
        candidate=$((18000 + RANDOM % 2000))
        if ! port_in_use "$candidate"; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# --- build (before anything is started, so build time never counts) -----------------------
if [[ -n ${ALTA_BIN:-} ]]; then
    log "server: $ALTA_BIN (not built here)"
    bin=$ALTA_BIN
elif [ "$server_profile" = release ]; then
    log "building the server ($server_profile)"
    cargo build --release --bin alta >&2
else
    log "building the server ($server_profile)"
    cargo build --bin alta >&2
fi
[[ -x $bin ]] || die "server binary not found at $bin"
bin=$(realpath "$bin")

log "building the driver (profile: $profile)"
if [[ -n ${BENCH_DRIVER_BIN:-} ]]; then
    [[ -x $BENCH_DRIVER_BIN ]] || die "driver binary not found at $BENCH_DRIVER_BIN"
else
    cargo bench --profile "$profile" --bench throughput --no-run >&2
fi

# --- environment for the server and the admin command -------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/alta-bench.XXXXXX")
mkdir -p "$work/data"
port=$(pick_port) || die "no free port found in 18000-19999"

# Passed to the alta commands only (not exported), so cargo never sees them. DATABASE_URL
# and REDIS_URL are cleared first and set again only when this run asks for them.
server_env=(
    -u DATABASE_URL -u REDIS_URL
    "DATA_DIR=$work/data"
    HOST=127.0.0.1
    "PORT=$port"
    RATE_LIMIT_AUTH_PER_IP=1000000/min
    RATE_LIMIT_AUTH_PER_ACCOUNT=1000000/min
    # upload_big sends up to 1023 MiB by default (the default per-project audio limit is
    # 1 GiB); the request limit must also cover the multipart framing.
    "MAX_UPLOAD_BYTES=$((1100 * 1024 * 1024))"
    "UPLOAD_CONCURRENCY=${BENCH_UPLOAD_CONCURRENCY:-8}"
)

if [[ $backend == postgres ]]; then
    command -v psql >/dev/null || die "psql is needed for the postgres backend"
    pg_db="alta_bench_$(date +%s)_${RANDOM}"
    log "creating database $pg_db on $pg_host:$pg_port"
    psql -h "$pg_host" -p "$pg_port" -U "$pg_user" -d postgres -q -v ON_ERROR_STOP=1 \
        -c "CREATE DATABASE $pg_db" >&2 || { pg_db=""; die "could not create the database"; }
    server_env+=("DATABASE_URL=postgres://${pg_user}${PGPASSWORD:+:$PGPASSWORD}@${pg_host}:${pg_port}/${pg_db}${BENCH_PG_QUERY:-}")
fi
# Group commit on or off (1: every command commits alone), to compare in one run.
if [[ -n ${PROJECT_GROUP_COMMIT_MAX:-} ]]; then
    server_env+=("PROJECT_GROUP_COMMIT_MAX=$PROJECT_GROUP_COMMIT_MAX")
fi
# The benchmark measures this process alone: Redis only when asked for explicitly.
if [[ -n ${BENCH_REDIS_URL:-} ]]; then
    server_env+=("REDIS_URL=$BENCH_REDIS_URL")
fi

# --- schema and account ---------------------------------------------------------------------
# Every alta command runs inside the temp dir, so a developer's ./.env cannot leak in.
log "migrating"
(cd "$work" && env "${server_env[@]}" "$bin" migrate) >>"$work/server.log" 2>&1 || die "alta migrate failed"
if [[ -n ${BENCH_WITHOUT_ROLLUPS:-} ]]; then
    log "dropping the rollup triggers (BENCH_WITHOUT_ROLLUPS)"
    if [[ $backend == postgres ]]; then
        psql -h "$pg_host" -p "$pg_port" -U "$pg_user" -d "$pg_db" -q -v ON_ERROR_STOP=1 \
            -c "DROP TRIGGER items_rollup_insert ON items; DROP TRIGGER items_rollup_update ON items; DROP TRIGGER review_decisions_rollup ON review_decisions" >&2 \
            || die "could not drop the rollup triggers"
    else
        sqlite3 "$work/data/alta.db" \
            "DROP TRIGGER items_rollup_insert; DROP TRIGGER items_rollup_update; DROP TRIGGER review_decisions_rollup" \
            || die "could not drop the rollup triggers"
    fi
fi
if [[ -n ${BENCH_SQL:-} ]]; then
    [[ $backend == postgres ]] || die "BENCH_SQL is for the postgres backend"
    log "running $BENCH_SQL (BENCH_SQL)"
    psql -h "$pg_host" -p "$pg_port" -U "$pg_user" -d "$pg_db" -q -v ON_ERROR_STOP=1 \
        -f "$BENCH_SQL" >&2 || die "could not run $BENCH_SQL"
fi

log "creating account $email"
printf '%s' "$password" |
    (cd "$work" && env "${server_env[@]}" "$bin" admin create --email "$email" --password-stdin) \
        >>"$work/server.log" 2>&1 ||
    die "alta admin create failed"

# --- server ---------------------------------------------------------------------------------
url="http://127.0.0.1:$port"
log "starting server on $url ($backend)"
# `exec env` (env execs in turn) keeps the background subshell's PID as the server's own.
(cd "$work" && exec env "${server_env[@]}" "$bin" serve) >>"$work/server.log" 2>&1 &
server_pid=$!

deadline=$((SECONDS + 60))
until curl -fsS -o /dev/null --max-time 2 "$url/health" 2>/dev/null; do
    kill -0 "$server_pid" 2>/dev/null || die "server exited during startup"
    ((SECONDS < deadline)) || die "server not healthy after 60 s"
    sleep 0.5
done
log "server is healthy"

# --- CPU time, to tell a saturated machine from a waiting one -------------------------------
# Clock ticks of the machine (busy, idle) and of the server and PostgreSQL's processes.
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }
process_ticks() {
    # utime + stime; the fields after the command name, which is in parentheses.
    local pid total=0
    for pid in "$@"; do
        [[ -r /proc/$pid/stat ]] || continue
        total=$((total + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }')))
    done
    echo "$total"
}
cpu_snapshot() {
    echo "$(machine_ticks) $(process_ticks "$server_pid") $(process_ticks $(pgrep -x postgres))"
}

# --- driver ---------------------------------------------------------------------------------
# The password goes through the environment (the driver reads ALTA_BENCH_PASSWORD), not argv.
driver_status=0
driver=(cargo bench --profile "$profile" --bench throughput --)
[[ -n ${BENCH_DRIVER_BIN:-} ]] && driver=("$BENCH_DRIVER_BIN")
perf_pid=""
if [[ -n ${BENCH_PERF_OUT:-} ]]; then
    command -v perf >/dev/null || die "BENCH_PERF_OUT needs perf (Debian's linux-perf)"
    perf record -a -e cpu-clock -F 497 -o "$BENCH_PERF_OUT" >/dev/null 2>&1 &
    perf_pid=$!
    sleep 0.3
fi
cpu_before=$(cpu_snapshot)
if [[ -n ${BENCH_MIXED:-} ]]; then
    # One driver per scenario, all at once; the run fails if any driver does.
    pids=()
    IFS=, read -ra mixed <<<"$BENCH_MIXED"
    for entry in "${mixed[@]}"; do
        [[ $entry =~ ^([a-z_0-9]+):([0-9]+)$ ]] || die "BENCH_MIXED entry '$entry' is not SCENARIO:N"
        ALTA_BENCH_PASSWORD="$password" \
            "${driver[@]}" \
            --url "$url" --email "$email" --label "$backend ${BASH_REMATCH[1]}" "$@" \
            --scenarios "${BASH_REMATCH[1]}" --concurrency "${BASH_REMATCH[2]}" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || driver_status=$?
    done
else
    ALTA_BENCH_PASSWORD="$password" \
        "${driver[@]}" \
        --url "$url" --email "$email" --label "$backend" "$@" || driver_status=$?
fi
cpu_after=$(cpu_snapshot)
if [[ -n $perf_pid ]]; then
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    log "CPU profile in $BENCH_PERF_OUT (perf report -i $BENCH_PERF_OUT --sort comm,dso)"
fi
# Where the machine's CPU went while the driver ran (its logins and setup included), in
# seconds: the server, PostgreSQL (every backend and helper), the rest (the driver, the
# kernel, anything else) and idle. Two saturated cores show idle near zero.
read -r busy0 idle0 server0 pg0 <<<"$cpu_before"
read -r busy1 idle1 server1 pg1 <<<"$cpu_after"
awk -v tck="$(getconf CLK_TCK)" -v busy=$((busy1 - busy0)) -v idle=$((idle1 - idle0)) \
    -v server=$((server1 - server0)) -v pg=$((pg1 - pg0)) 'BEGIN {
        printf "%-10s busy_s=%.1f idle_s=%.1f server_s=%.1f postgres_s=%.1f other_s=%.1f\n", "cpu",
            busy / tck, idle / tck, server / tck, pg / tck, (busy - server - pg) / tck
    }' >&2

# --- server memory (before cleanup stops it) ---------------------------------------------------
# VmHWM is the peak resident set size over the server's life, VmRSS the current one (kB).
status_file=/proc/$server_pid/status
if kill -0 "$server_pid" 2>/dev/null && [[ -r $status_file ]]; then
    memory=$(awk '
        /^VmHWM:/ { peak = $2 }
        /^VmRSS:/ { rss = $2 }
        END { printf "peak_rss=%.1fMiB rss=%.1fMiB", peak / 1024, rss / 1024 }
    ' "$status_file")
    printf '%-10s %s\n' server "$memory" >&2
else
    log "server (pid $server_pid) is gone: no memory figures"
fi
# --- group commit (the server's own histogram) -----------------------------------------------
# How many commands each project-actor commit carried, on average, over the run.
if groups=$(curl -fsS "$url/metrics" 2>/dev/null); then
    # Server errors answered over the run, by route and status (none is the goal).
    awk '
        /^http_requests_total\{/ && /status="5[0-9][0-9]"/ { n += $NF; lines = lines "\n  " $1 " " $NF }
        END { printf "%-10s server_errors=%d%s\n", "responses", n, lines }
    ' <<<"$groups" >&2
    awk '
        /^project_group_commands_sum / { sum = $2 }
        /^project_group_commands_count / { count = $2 }
        /^project_group_commit_seconds_sum / { seconds = $2 }
        /^project_group_restarts_total / { restarts = $2 }
        /^project_actor_turn_seconds_sum / { busy = $2 }
        END { if (count > 0) printf "%-10s commits=%d commands=%d commands_per_commit=%.2f mean_group_ms=%.2f actor_busy_s=%.2f restarts=%d\n", "groups", count, sum, sum / count, 1000 * seconds / count, (busy > 0 ? busy : seconds), restarts }
    ' <<<"$groups" >&2
    # Where the actor's time goes: mean time of each kind of transition inside its group
    # (without the commit), then the rest of each group, by stage (open, kept writes,
    # commit).
    by_label() { # metric, label, what to print first
        awk -v metric="$1" -v label="$2" -v what="$3" '
            function key(field) { match(field, label "=\"[^\"]*\""); return substr(field, RSTART + length(label) + 2, RLENGTH - length(label) - 3) }
            index($1, metric "_sum{") == 1 { sum[key($1)] = $2 }
            index($1, metric "_count{") == 1 { count[key($1)] = $2 }
            END { for (t in count) if (count[t] > 0) printf "%-10s %s n=%d mean_ms=%.2f total_s=%.2f\n", what, t, count[t], 1000 * sum[t] / count[t], sum[t] }
        ' <<<"$groups" >&2
    }
    by_label project_transition_seconds transition transition
    by_label project_group_stage_seconds stage stage
    # Uploads answered against documents processed by then: a rate of uploads that the
    # processing does not keep pace with only fills the queue.
    awk '
        /^uploads_total[{ ]/ { uploaded += $NF }
        /^processing_outcomes_total[{ ]/ { processed += $NF }
        END { printf "%-10s uploaded=%d processed=%d queued=%d\n", "documents", uploaded, processed, uploaded - processed }
    ' <<<"$groups" >&2
fi
exit "$driver_status"
