#!/bin/sh
# Builds ngx_http_ai_gateway_module.so against the installed nginx: a copy
# of Debian's nginx-dev tree, configured with the binary's own flags.
set -e

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$ROOT/build"
NGX_SRC=/usr/share/nginx/src
SRC="$BUILD/nginx-src"
EXTRA_CC_OPT=${AIGW_CC_OPT:-}
EXTRA_LD_OPT=${AIGW_LD_OPT:-}

die() { echo "aigw: $*" >&2; exit 1; }

[ -x /usr/sbin/nginx ] || die "nginx is not installed (apt-get install nginx)"
[ -f "$NGX_SRC/conf_flags" ] \
    || die "nginx-dev is not installed (apt-get install nginx-dev)"
[ -f /usr/include/jansson.h ] \
    || die "jansson headers missing (apt-get install libjansson-dev)"
[ -f /usr/include/openssl/ssl.h ] \
    || die "OpenSSL headers missing (apt-get install libssl-dev)"

bin_ver=$(/usr/sbin/nginx -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
src_ver=$(sed -n 's|^#define NGINX_VERSION *"\(.*\)"|\1|p' \
          "$NGX_SRC/src/core/nginx.h")
[ "$bin_ver" = "$src_ver" ] || die "version mismatch: /usr/sbin/nginx is \
$bin_ver but $NGX_SRC is $src_ver; install matching nginx and nginx-dev"

mkdir -p "$BUILD"

if [ ! -f "$SRC/.copied-$src_ver" ]; then
    rm -rf "$SRC"
    cp -r "$NGX_SRC" "$SRC"
    touch "$SRC/.copied-$src_ver"
fi

stamp="$SRC/.configured"
want="$(cat "$ROOT/config") cc=$EXTRA_CC_OPT ld=$EXTRA_LD_OPT"
if [ ! -f "$SRC/objs/Makefile" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]
then
    echo "aigw: configuring nginx $src_ver (log: build/configure.log)"
    (
        cd "$SRC"

        # conf_flags is a bash array; POSIX sh reads it as one string
        flags=$(sed -n 's/^NGX_CONF_FLAGS=(\(.*\))$/\1/p' conf_flags)
        eval "set -- $flags"
        ./configure "$@" \
            --with-cc-opt="-g -O2 -Wall -Wextra -Werror -Wno-unused-parameter $EXTRA_CC_OPT" \
            --with-ld-opt="$EXTRA_LD_OPT" \
            --add-dynamic-module="$ROOT"
    ) > "$BUILD/configure.log" 2>&1 || {
        tail -20 "$BUILD/configure.log" >&2
        die "nginx configure failed (full log: build/configure.log)"
    }
    printf '%s' "$want" > "$stamp"
fi

make -s -C "$SRC" -f objs/Makefile modules > "$BUILD/make.log" 2>&1 || {
    grep -E "error|warning" "$BUILD/make.log" | head -30 >&2
    die "module build failed (full log: build/make.log)"
}

cp "$SRC/objs/ngx_http_ai_gateway_module.so" "$BUILD/"
