#!/bin/sh
# Load proof (issue 11): concurrent SSE streams through aigw and through
# bare NGINX proxy_pass in the same run (bench/load/load.py), against the
# epoll mock provider (stream_mock.c), driven by the libcurl multi client
# (stream_client.c).  Builds both tools into build/load/ first.
#
#   make bench-load                                   # the full proof
#   LOAD_STREAMS_1S=500 LOAD_STREAMS_100MS=500 LOAD_CHUNKS_1S=5 \
#   LOAD_CHUNKS_100MS=20 bench/load/run.sh            # a quick small run
#   LOAD_SOAK=only LOAD_SOAK_SECONDS=600 bench/load/run.sh   # the soak
#
# Knobs: see the top of bench/load/load.py.
set -u

LOAD_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$(dirname "$LOAD_DIR")")
PYTHON=${PYTHON:-/usr/bin/python3}
CC=${CC:-cc}

if [ ! -f "$ROOT/build/ngx_http_ai_gateway_module.so" ]; then
    echo "load: build/ngx_http_ai_gateway_module.so is missing (make module)" >&2
    exit 2
fi
mkdir -p "$ROOT/build/load" || exit 2
$CC -O2 -g -Wall -Wextra -Werror -o "$ROOT/build/load/stream_mock" \
    "$LOAD_DIR/stream_mock.c" || exit 2
$CC -O2 -g -Wall -Wextra -Werror -o "$ROOT/build/load/stream_client" \
    "$LOAD_DIR/stream_client.c" -lcurl || exit 2

LOAD_WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/aigw-load.XXXXXX") || exit 2
export LOAD_WORKDIR

cleanup() {
    # load.py stops what it started; this catches what a killed load.py
    # could not: the nginx instances under our work directory
    for pidfile in "$LOAD_WORKDIR"/*/nginx.pid; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile" 2>/dev/null)
        [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null
    done
    if [ -n "${PY_PID:-}" ]; then
        kill "$PY_PID" 2>/dev/null
    fi
    rm -rf "$LOAD_WORKDIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cd "$ROOT" || exit 2
"$PYTHON" "$LOAD_DIR/load.py" &
PY_PID=$!
wait "$PY_PID"
rc=$?
PY_PID=
exit $rc
