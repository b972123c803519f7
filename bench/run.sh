#!/bin/sh
# aigw overhead benchmark: aigw vs bare NGINX proxy_pass vs the mock itself,
# non-streaming and streaming, in one run on 127.0.0.1; then the feature
# scenarios (Anthropic provider, limits in shared memory and Redis, cache,
# plugins, 8-target routing) against their comparison points.  See
# bench/bench.py for what is measured and bench/RESULTS.md for the latest
# numbers.
#
#   BENCH_DURATION=10 BENCH_CONNECTIONS=50 bench/run.sh
#
# Other knobs: BENCH_THREADS (1 pinned, 2 not), BENCH_WARMUP (2 s), BENCH_PIN (1),
# BENCH_ROUNDS (1), BENCH_RESULTS (bench/RESULTS.md, "-" for none),
# BENCH_FEATURE_DURATION (5 s per feature measurement), BENCH_FEATURES
# (all | none | comma list of anthropic,limits,cache,plugins,routing).
# The Redis scenario needs redis-server (skipped, and reported, without).
# Exit status: 0 whatever the numbers; non-zero only when something could
# not start.
set -u

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
PYTHON=${PYTHON:-/usr/bin/python3}

if ! command -v wrk >/dev/null 2>&1; then
    echo "bench: wrk is not installed (apt-get install wrk)" >&2
    exit 1
fi
if [ ! -f "$ROOT/build/ngx_http_ai_gateway_module.so" ]; then
    echo "bench: build/ngx_http_ai_gateway_module.so is missing (make module)" >&2
    exit 1
fi

BENCH_WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/aigw-bench.XXXXXX") || exit 1
export BENCH_WORKDIR

cleanup() {
    # bench.py stops everything it started; this catches what a killed
    # bench.py could not: every nginx whose prefix is our work directory.
    for pidfile in "$BENCH_WORKDIR"/*/nginx.pid; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile" 2>/dev/null)
        [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null
    done
    pidfile="$BENCH_WORKDIR/redis/redis.pid"
    if [ -f "$pidfile" ]; then
        pid=$(cat "$pidfile" 2>/dev/null)
        [ -n "$pid" ] && kill "$pid" 2>/dev/null
    fi
    if [ -n "${PY_PID:-}" ]; then
        kill "$PY_PID" 2>/dev/null
    fi
    rm -rf "$BENCH_WORKDIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cd "$ROOT" || exit 1
"$PYTHON" "$BENCH_DIR/bench.py" &
PY_PID=$!
wait "$PY_PID"
rc=$?
PY_PID=
exit $rc
