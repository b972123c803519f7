#!/bin/sh
# The inference engine's benchmark (make bench-engine): stories260K decode,
# a random ~100M Q8_0 model against the memory-bandwidth roofline, 16
# concurrent streams, tokenizer MB/s; every figure against the engine's own
# scalar reference in the same run.  Results: bench/engine/RESULTS.md.
#
#   bench/engine/run.sh [--quick]
#
# AIGW_MODELS_DIR: where stories260K lives (default ../shared/models).
set -e
root=$(cd "$(dirname "$0")/../.." && pwd)
models=${AIGW_MODELS_DIR:-$root/../shared/models}

if [ ! -f "$models/stories260K.gguf" ]; then
    echo "bench/engine: no stories260K in $models (set AIGW_MODELS_DIR)" >&2
    exit 1
fi

exec make -C "$root/module/engine" bench AIGW_MODELS_DIR="$models" \
    BENCH_OUT="$root/bench/engine/RESULTS.md" BENCH_ARGS="$*"
