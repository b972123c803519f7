#!/bin/sh
# Builds the Redis client's test module (tests/redis) against the installed
# nginx, like tools/build-module.sh does the gateway, in a build folder of
# its own: build/redis-test-src, output build/redis-test/.
set -e

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD="$ROOT/build"
NGX_SRC=/usr/share/nginx/src
SRC="$BUILD/redis-test-src"
OUT="$BUILD/redis-test"
EXTRA_CC_OPT=${AIGW_CC_OPT:-}
EXTRA_LD_OPT=${AIGW_LD_OPT:-}

die() { echo "aigw: $*" >&2; exit 1; }

[ -x /usr/sbin/nginx ] || die "nginx is not installed (apt-get install nginx)"
[ -f "$NGX_SRC/conf_flags" ] \
    || die "nginx-dev is not installed (apt-get install nginx-dev)"
[ -f /usr/include/hiredis/hiredis.h ] \
    || die "hiredis headers missing (apt-get install libhiredis-dev)"

src_ver=$(sed -n 's|^#define NGINX_VERSION *"\(.*\)"|\1|p' \
          "$NGX_SRC/src/core/nginx.h")

mkdir -p "$BUILD" "$OUT"

if [ ! -f "$SRC/.copied-$src_ver" ]; then
    rm -rf "$SRC"
    cp -r "$NGX_SRC" "$SRC"
    touch "$SRC/.copied-$src_ver"
fi

stamp="$SRC/.configured"
want="$(cat "$ROOT/tests/redis/config") cc=$EXTRA_CC_OPT ld=$EXTRA_LD_OPT"
if [ ! -f "$SRC/objs/Makefile" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]
then
    echo "aigw: configuring nginx $src_ver for the redis test module"
    (
        cd "$SRC"
        flags=$(sed -n 's/^NGX_CONF_FLAGS=(\(.*\))$/\1/p' conf_flags)
        eval "set -- $flags"
        ./configure "$@" \
            --with-cc-opt="-g -O2 -Wall -Wextra -Werror -Wno-unused-parameter $EXTRA_CC_OPT" \
            --with-ld-opt="$EXTRA_LD_OPT" \
            --add-dynamic-module="$ROOT/tests/redis"
    ) > "$OUT/configure.log" 2>&1 || {
        tail -20 "$OUT/configure.log" >&2
        die "nginx configure failed (full log: build/redis-test/configure.log)"
    }
    printf '%s' "$want" > "$stamp"
fi

make -s -C "$SRC" -f objs/Makefile modules > "$OUT/make.log" 2>&1 || {
    grep -E "error|warning" "$OUT/make.log" | head -30 >&2
    die "test module build failed (full log: build/redis-test/make.log)"
}

cp "$SRC/objs/ngx_http_ai_redis_test_module.so" "$OUT/"
echo "aigw: built build/redis-test/ngx_http_ai_redis_test_module.so"
