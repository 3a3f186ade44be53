#!/usr/bin/env bash
# A gated load test for any CI: provision a run of test data, drive a headless Locust
# run of the toolkit's scenarios against the platform with that run's credentials pool,
# and tear the run down whatever happened (a failed or interrupted Locust step included).
#
# Exit code: Locust's, that is the gate's (0 pass, 3 targets or baseline breached, other
# non-zero: Locust failed); provision's code when provisioning failed, or when teardown
# failed after a passing run; 2 for a configuration error found before anything ran.
#
# Configuration (environment):
#   HOST            the platform's base URL (required), e.g. http://127.0.0.1:8000
#   DATABASE_URL    the platform's PostgreSQL (required).  A host that is not loopback is
#                   refused by the toolkit unless PROVISION_ALLOW_REMOTE=1 is also set.
#   SCALE           provision scale (default small); SET: space-separated count overrides
#                   ("users=20 agents=100"); SEED, BCRYPT_COST: passed on when set.
#   Load shape, one of:
#     LOAD_PROFILE + TIME_SCALE   a named profile, durations multiplied (default light, 0.5)
#     RUN_TIME + USERS + SPAWN_RATE   a plain run (used when RUN_TIME is set; users 10, rate 1)
#   BASELINE        an earlier results JSON: fail on a p95 or throughput regression beyond
#                   MAX_REGRESSION percent (default 20; CI machines are noisy).
#                   A BASELINE file that does not exist: a warning, no comparison.
#   OUT_DIR         report.html, results.json, stats_*.csv, up.json, down-*.json (default ./loadtest-out)
#   LOCUSTFILE      default: scenarios/locustfile.py of the installed agentic-loadkit
#   LOCUST_ARGS     extra Locust arguments (split on spaces)
#   PROVISION, LOCUST   the commands to run (default: provision, locust from PATH)
#
# Credentials never land in OUT_DIR (CI uploads it): the pool lives in a private
# temporary state directory, removed once the run is torn down.
#
# Example, against a platform on this machine:
#   HOST=http://127.0.0.1:8000 DATABASE_URL=postgresql://postgres@127.0.0.1:5432/agentic_db \
#   SCALE=small SET="users=20" RUN_TIME=15s USERS=5 SPAWN_RATE=5 examples/ci/loadtest.sh

# shellcheck disable=SC2317  # teardown and on_signal run from traps
set -u -o pipefail

log() { printf 'loadtest: %s\n' "$*" >&2; }
die() { log "$1"; exit "${2:-2}"; }

PROVISION=${PROVISION:-provision}
LOCUST=${LOCUST:-locust}
OUT_DIR=${OUT_DIR:-loadtest-out}
SCALE=${SCALE:-small}

# ---- check the configuration before touching anything --------------------------------
[ -n "${HOST:-}" ] || die "HOST is not set: give the platform's base URL, e.g. HOST=http://127.0.0.1:8000."
[ -n "${DATABASE_URL:-}" ] || die "DATABASE_URL is not set: give the platform's PostgreSQL URL."
command -v "$PROVISION" >/dev/null 2>&1 || die "'$PROVISION' is not on PATH: pip install agentic-loadkit first."
command -v "$LOCUST" >/dev/null 2>&1 || die "'$LOCUST' is not on PATH: pip install agentic-loadkit first."
if [ -n "${RUN_TIME:-}" ] && [ -n "${LOAD_PROFILE:-}${TIME_SCALE:-}" ]; then
    die "Set either RUN_TIME (with USERS, SPAWN_RATE) or LOAD_PROFILE (with TIME_SCALE), not both."
fi

if [ -z "${LOCUSTFILE:-}" ]; then
    # The Python that runs Locust (its script's shebang) knows where the package lives.
    python_bin=$(sed -n '1s/^#![[:space:]]*//p' "$(command -v "$LOCUST")")
    case $python_bin in
        /*python*) [ -x "${python_bin%% *}" ] && python_bin=${python_bin%% *} || python_bin=python3 ;;
        *) python_bin=python3 ;;
    esac
    LOCUSTFILE=$("$python_bin" -c 'import pathlib, agentic_loadkit.scenarios as s; print(pathlib.Path(s.__file__).with_name("locustfile.py"))' 2>/dev/null) \
        || die "Cannot find agentic-loadkit's locustfile with $python_bin; set LOCUSTFILE."
fi
[ -f "$LOCUSTFILE" ] || die "The locustfile $LOCUSTFILE does not exist; set LOCUSTFILE."

mkdir -p "$OUT_DIR" || die "Cannot create OUT_DIR $OUT_DIR."

# ---- a private state directory, and teardown whatever happens ----------------------
STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/loadkit-state.XXXXXX") || die "Cannot create a temporary state directory."
export PROVISION_STATE_DIR=$STATE_DIR
locust_pid=""

teardown() {
    rc=$?
    trap - EXIT INT TERM
    down_rc=0
    for run_dir in "$STATE_DIR"/runs/*/; do
        [ -d "$run_dir" ] || continue
        run_id=$(basename "$run_dir")
        log "tearing down run $run_id"
        "$PROVISION" down "$run_id" --json >"$OUT_DIR/down-$run_id.json"
        status=$?
        if [ "$status" -ne 0 ]; then
            log "provision down $run_id failed (exit $status)"
            down_rc=$status
        fi
    done
    if [ "$down_rc" -eq 0 ]; then
        rm -rf "$STATE_DIR"
    else
        log "teardown incomplete; state kept in $STATE_DIR (run 'provision down RUN_ID' again)"
        [ "$rc" -eq 0 ] && rc=$down_rc
    fi
    for artifact in "$OUT_DIR/report.html" "$OUT_DIR/results.json"; do
        [ -f "$artifact" ] && log "written: $artifact"
    done
    log "exit $rc"
    exit "$rc"
}

on_signal() {
    # Locust stops gracefully on SIGTERM (it writes its reports); then teardown runs.
    if [ -n "$locust_pid" ] && kill -0 "$locust_pid" 2>/dev/null; then
        log "stopping Locust"
        kill -TERM "$locust_pid" 2>/dev/null
        wait "$locust_pid" 2>/dev/null
    fi
    exit "$1"
}

trap teardown EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# ---- provision ------------------------------------------------------------------------
up_args=(up --scale "$SCALE" --json)
[ -n "${SEED:-}" ] && up_args+=(--seed "$SEED")
[ -n "${BCRYPT_COST:-}" ] && up_args+=(--bcrypt-cost "$BCRYPT_COST")
for pair in ${SET:-}; do
    up_args+=(--set "$pair")
done
log "provision ${up_args[*]}"
"$PROVISION" "${up_args[@]}" >"$OUT_DIR/up.json"
status=$?
[ "$status" -eq 0 ] || die "provision up failed (exit $status)." "$status"

credentials=""
for manifest in "$STATE_DIR"/runs/*/manifest.json; do
    [ -f "$manifest" ] && credentials="$(dirname "$manifest")/credentials.csv"
done
[ -n "$credentials" ] || die "provision up succeeded but left no ready run under $STATE_DIR." 1

# ---- the gated Locust run ---------------------------------------------------------------
locust_args=(-f "$LOCUSTFILE" --headless --host "$HOST" --credentials "$credentials"
    --html "$OUT_DIR/report.html" --csv "$OUT_DIR/stats" --results-json "$OUT_DIR/results.json")
if [ -n "${RUN_TIME:-}" ]; then
    locust_args+=(--users "${USERS:-10}" --spawn-rate "${SPAWN_RATE:-1}" --run-time "$RUN_TIME")
else
    locust_args+=(--load-profile "${LOAD_PROFILE:-light}" --time-scale "${TIME_SCALE:-0.5}")
fi
if [ -n "${BASELINE:-}" ]; then
    if [ -f "$BASELINE" ]; then
        locust_args+=(--baseline "$BASELINE" --max-regression "${MAX_REGRESSION:-20}")
    else
        log "warning: BASELINE $BASELINE does not exist; no baseline comparison this time"
    fi
fi
# shellcheck disable=SC2206  # LOCUST_ARGS is split on purpose
locust_args+=(${LOCUST_ARGS:-})

log "locust ${locust_args[*]}"
# In the background so that a TERM from the CI reaches this shell at once (see on_signal).
"$LOCUST" "${locust_args[@]}" &
locust_pid=$!
wait "$locust_pid"
locust_rc=$?
locust_pid=""
log "locust exited with $locust_rc"
exit "$locust_rc"
