#!/bin/sh
# Runs the integration suite against the module built with AddressSanitizer
# and UndefinedBehaviorSanitizer; any sanitizer report fails the run.
#
#   tools/asan-test.sh [pytest arguments]     (default: tests/integration)
#
# Nothing of the normal build is touched: everything lives in build/asan/.
# tools/build-module.sh always writes to <its root>/build and the tests
# load <their root>/build/ngx_http_ai_gateway_module.so, so the script
# makes a shadow root, build/asan/root, whose config, module/, engine
# sources, plugins and tools are symbolic links to the real ones, with
# three exceptions: module/engine/build points at an ASan build of the
# engine, lua-free-plugins/build at ASan builds of the plugins, and
# tests/integration is a fresh copy (so that conftest.py finds the shadow
# root, hence the ASan module).  The copy of conftest.py runs nginx
# through build/asan/nginx, a wrapper that preloads libasan: the stock
# /usr/sbin/nginx is not instrumented, and ASan must be the first library
# loaded, before the module is dlopen()ed ("ASan runtime does not come
# first in initial library list").  Only nginx gets the preload; python,
# redis-server and node run as usual.
#
# Sanitizer settings (see docs/hardening.md):
#   ASAN_OPTIONS   detect_leaks=0 (nginx allocates its cycle, pools and
#                  shared zones once and exits without freeing them: LSan
#                  reports are noise; leaks are checked with valgrind,
#                  tests/fuzz/test_valgrind.py), abort_on_error=1 (a report
#                  kills the process: the master logs "exited on signal 6"
#                  and conftest's crash check fails the test), log_path
#   UBSAN_OPTIONS  halt_on_error=1, abort_on_error=1, print_stacktrace=1,
#                  log_path (UBSan's "runtime error:" lines would otherwise
#                  go to nginx's stderr, which conftest does not read)
# After pytest, any file in build/asan/logs/ (one per reporting process)
# fails the run and is printed.

set -u

REPO=$(cd "$(dirname "$0")/.." && pwd)
A="$REPO/build/asan"
SH="$A/root"
LOGS="$A/logs"
PYTHON=${PYTHON:-/usr/bin/python3}
SAN_CC="-fsanitize=address,undefined -fno-omit-frame-pointer -g"
SAN_LD="-fsanitize=address,undefined"

die() { echo "asan-test: $*" >&2; exit 1; }

libasan=$(gcc -print-file-name=libasan.so)
[ -f "$libasan" ] || die "libasan not found (apt-get install libasan8 / gcc)"

mkdir -p "$A"

# 1. the shadow root (links are remade every run: files come and go)

rm -rf "$SH/module" "$SH/lua-free-plugins" "$SH/tests" "$SH/tools"
mkdir -p "$SH/module/engine" "$SH/lua-free-plugins" "$SH/tests" "$SH/tools"

ln -sfn "$REPO/config" "$SH/config"
ln -sfn "$REPO/tools/build-module.sh" "$SH/tools/build-module.sh"

for f in "$REPO"/module/*; do
    [ "$(basename "$f")" = engine ] || ln -s "$f" "$SH/module/"
done

for f in "$REPO"/module/engine/*; do
    case "$(basename "$f")" in build|build-*) continue ;; esac
    ln -s "$f" "$SH/module/engine/"
done
ln -s "$A/engine" "$SH/module/engine/build"

for f in "$REPO"/lua-free-plugins/*; do
    [ "$(basename "$f")" = build ] || ln -s "$f" "$SH/lua-free-plugins/"
done
ln -s "$A/plugins" "$SH/lua-free-plugins/build"

cp -r "$REPO/tests/integration" "$SH/tests/integration"
rm -rf "$SH/tests/integration/__pycache__"
for d in mocks sdk unit; do
    [ -e "$REPO/tests/$d" ] && ln -s "$REPO/tests/$d" "$SH/tests/$d"
done

cat > "$A/nginx" <<WRAP
#!/bin/sh
# /usr/sbin/nginx with the ASan runtime first (tools/asan-test.sh)
LD_PRELOAD="$libasan\${LD_PRELOAD:+:\$LD_PRELOAD}" exec /usr/sbin/nginx "\$@"
WRAP
chmod +x "$A/nginx"

sed -i "s|^NGINX = \"/usr/sbin/nginx\"|NGINX = \"$A/nginx\"|" \
    "$SH/tests/integration/conftest.py"
grep -q "^NGINX = \"$A/nginx\"" "$SH/tests/integration/conftest.py" \
    || die "conftest.py no longer has NGINX = \"/usr/sbin/nginx\"; update \
tools/asan-test.sh"

# 2. the builds: engine, plugins, module, all with the sanitizers

echo "asan-test: building the engine, plugins and module with ASan+UBSan"

make -s -C "$REPO/module/engine" SANITIZE=1 BUILD="$A/engine" all \
    > "$A/engine.log" 2>&1 \
    || { tail -20 "$A/engine.log" >&2; die "engine build failed"; }

make -s -C "$REPO/lua-free-plugins" BUILD="$A/plugins" \
    CFLAGS="-O1 -g $SAN_CC" all > "$A/plugins.log" 2>&1 \
    || { tail -20 "$A/plugins.log" >&2; die "plugins build failed"; }

AIGW_CC_OPT="$SAN_CC" AIGW_LD_OPT="$SAN_LD" "$SH/tools/build-module.sh" \
    || die "module build failed (log: build/asan/root/build/make.log)"

nm -D "$SH/build/ngx_http_ai_gateway_module.so" | grep -q __asan_init \
    || die "the module is not instrumented"

# 3. the suite

rm -rf "$LOGS"
mkdir -p "$LOGS"
chmod 1777 "$LOGS"            # workers run as nobody

export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:\
log_path=$LOGS/asan:log_exe_name=1${AIGW_ASAN_OPTIONS:+:$AIGW_ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:\
log_path=$LOGS/ubsan:log_exe_name=1"
export AIGW_MODELS_DIR=${AIGW_MODELS_DIR:-$REPO/../shared/models}

cd "$SH" || exit 1

if [ $# -eq 0 ]; then
    set -- -q tests/integration
fi

"$PYTHON" -m pytest -p no:cacheprovider "$@"
rc=$?

reports=$(find "$LOGS" -type f | sort)

if [ -n "$reports" ]; then
    echo "asan-test: sanitizer reports:"
    for f in $reports; do
        echo "=== $f"
        head -60 "$f"
    done
    exit 1
fi

[ $rc -eq 0 ] || die "pytest failed (rc $rc)"

echo "asan-test: no sanitizer report"
