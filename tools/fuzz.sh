#!/bin/sh
# Builds the libFuzzer targets of tests/fuzz/ into build/fuzz/ and runs
# each for a bounded time:
#
#   tools/fuzz.sh [SECONDS-PER-TARGET] [TARGET...]    (default 60, all)
#
# For every target, first the recorded regressions
# (tests/fuzz/regressions/TARGET/*) are replayed one by one, then the
# fuzzer runs from the seeds (tests/fuzz/corpus/TARGET/) plus what earlier
# runs found (build/fuzz/corpus/TARGET/).  Exits non-zero when a
# regression fails or a new crash, leak, sanitizer report or broken
# invariant is found; the input is left in build/fuzz/artifacts/TARGET/.
# docs/hardening.md says how to turn a crash into a regression.
#
# Environment: FUZZ_CC (clang), AIGW_MODELS_DIR (../shared/models: the
# tokenizer target needs stories260K.gguf; skipped without it).

set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

SECS=${1:-60}
[ $# -gt 0 ] && shift

OUT=build/fuzz
export AIGW_MODELS_DIR=${AIGW_MODELS_DIR:-$ROOT/../shared/models}

die() { echo "fuzz: $*" >&2; exit 1; }

case "$SECS" in
    ''|*[!0-9]*) die "usage: tools/fuzz.sh [seconds-per-target] [target...]" ;;
esac

command -v "${FUZZ_CC:-clang}" > /dev/null \
    || die "clang is not installed (apt-get install clang)"

jobs=$(nproc 2>/dev/null || echo 2)
mkdir -p "$OUT"
make -s -j"$jobs" -f tests/fuzz/Makefile OUT="$OUT" > "$OUT.build.log" 2>&1 \
    || { mkdir -p build; tail -30 "$OUT.build.log" >&2;
         die "build failed (log: $OUT.build.log)"; }

if [ $# -gt 0 ]; then
    targets="$*"
else
    targets=$(make -s -f tests/fuzz/Makefile list)
fi

mkdir -p "$OUT/logs"
failed=""

for t in $targets; do
    bin="$OUT/$t"
    [ -x "$bin" ] || die "no such target: $t"

    if [ "$t" = fuzz_tokenizer ] \
       && [ ! -f "$AIGW_MODELS_DIR/stories260K.gguf" ]; then
        echo "fuzz: $t skipped: no $AIGW_MODELS_DIR/stories260K.gguf"
        continue
    fi

    # 1. regressions, strictly (known bugs are not tolerated here)

    bad=0
    if [ -d "tests/fuzz/regressions/$t" ]; then
        for r in "tests/fuzz/regressions/$t"/*; do
            [ -f "$r" ] || continue
            case "$r" in *.md|*.txt) continue ;; esac
            if ! "$bin" "$r" > "$OUT/logs/$t.regression.log" 2>&1; then
                echo "fuzz: $t: REGRESSION FAILS: $r" \
                     "(log: $OUT/logs/$t.regression.log)"
                grep -m3 -E "^fuzz:|ERROR: |runtime error" \
                    "$OUT/logs/$t.regression.log" | sed 's/^/    /'
                bad=1
            fi
        done
    fi

    # 2. a bounded fuzzing run

    mkdir -p "$OUT/corpus/$t" "$OUT/artifacts/$t"
    log="$OUT/logs/$t.log"

    AIGW_FUZZ_TOLERATE_KNOWN=1 "$bin" -max_total_time="$SECS" \
        -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$OUT/artifacts/$t/" \
        "$OUT/corpus/$t" "tests/fuzz/corpus/$t" > "$log" 2>&1
    rc=$?

    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    [ -n "$execs" ] || execs=$(grep -E '^#[0-9]+' "$log" | tail -1 \
                                | sed 's/^#\([0-9]*\).*/\1/')
    cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')

    if [ $rc -ne 0 ]; then
        art=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        echo "fuzz: $t: CRASH after ${execs:-?} runs: ${art:-see $log}"
        grep -m3 -E "^fuzz:|ERROR: |runtime error|SUMMARY" "$log" \
            | sed 's/^/    /'
        echo "    reproduce: $bin $art"
        bad=1
    else
        echo "fuzz: $t: ok, ${execs:-?} runs in ${SECS}s, coverage ${cov:-?}"
    fi

    [ $bad -eq 0 ] || failed="$failed $t"
done

if [ -n "$failed" ]; then
    echo "fuzz: FAILED:$failed"
    exit 1
fi

echo "fuzz: all targets passed"
