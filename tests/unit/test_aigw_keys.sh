#!/bin/sh
# Tests of tools/aigw-keys against a temporary tenants file and, when
# redis-server is installed, a temporary redis-server on a free port.
#
#   tests/unit/test_aigw_keys.sh [path/to/aigw-keys]
#
# Builds build/aigw-keys first when no binary is given.

set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${1:-}

if [ -z "$BIN" ]; then
    make -s -C "$ROOT" -f tools/Makefile.keys build/aigw-keys || exit 1
    BIN="$ROOT/build/aigw-keys"
fi

case "$BIN" in /*) ;; *) BIN="$(pwd)/$BIN" ;; esac

TMP=$(mktemp -d)
REDIS_PID=
cleanup() {
    [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

checks=0
failures=0

ok() {      # ok "what" command...: the command must succeed
    what=$1; shift
    checks=$((checks + 1))
    if ! "$@"; then
        failures=$((failures + 1))
        echo "test_aigw_keys.sh: FAILED: $what" >&2
    fi
}

status_is() {   # status_is WANT "what" command...
    want=$1; what=$2; shift 2
    checks=$((checks + 1))
    "$@" >"$TMP/out" 2>"$TMP/err"
    got=$?
    if [ "$got" != "$want" ]; then
        failures=$((failures + 1))
        echo "test_aigw_keys.sh: FAILED: $what: exit $got, wanted $want" >&2
        sed 's/^/    /' "$TMP/err" >&2
    fi
}

contains() { grep -q -- "$2" "$1"; }
lacks() { ! grep -q -- "$2" "$1"; }
sha() { printf %s "$1" | sha256sum | cut -c1-64; }
is_key() { printf %s "$1" | grep -Eq '^aigw-[0-9A-Za-z]{40}$'; }


# --- the file store ----------------------------------------------------

F="$TMP/tenants.json"

status_is 2 "no command" "$BIN"
status_is 0 "--help" "$BIN" --help
status_is 0 "create --help" "$BIN" create --help
ok "create --help names --tenant" contains "$TMP/out" "--tenant"
status_is 2 "unknown command" "$BIN" frobnicate
status_is 2 "unknown option" "$BIN" list --file "$F" --bogus
status_is 2 "option of another command" "$BIN" list --file "$F" --id x
status_is 2 "no store" "$BIN" list
status_is 2 "both stores" "$BIN" list --file "$F" --redis redis://127.0.0.1:1
status_is 2 "bad tenant name" "$BIN" create --file "$F" --tenant "a:b"
status_is 2 "negative limit" "$BIN" create --file "$F" --tenant t --rpm -1
status_is 2 "bad expiry" "$BIN" create --file "$F" --tenant t --expires soon
status_is 2 "expiry in the past" "$BIN" create --file "$F" --tenant t \
    --create-tenant --expires 2020-01-01T00:00:00Z
status_is 1 "missing file" "$BIN" create --file "$F" --tenant t
ok "no file left behind" test ! -e "$F"

status_is 0 "create with --create-tenant" "$BIN" create --file "$F" \
    --tenant team-a --create-tenant --id ci-bot --expires 2099-01-01T00:00:00Z \
    --rpm 30 --budget-per-day 2.5 --description "CI pipeline"
KEY1=$(cat "$TMP/out")
ok "stdout is just the key" is_key "$KEY1"
ok "reminder on stderr" contains "$TMP/err" "nginx -s reload"
ok "stderr has no key" lacks "$TMP/err" "$KEY1"
ok "file has the digest" contains "$F" "$(sha "$KEY1")"
ok "file has no key" lacks "$F" "$KEY1"
ok "file has the limits" contains "$F" '"requests_per_minute": 30'
ok "file has the expiry" contains "$F" '"expires": "2099-01-01T00:00:00Z"'
ok "new file is not world-readable" \
    test "$(stat -c %a "$F")" = 640
status_is 0 "check" "$BIN" check --file "$F"
ok "check counts" contains "$TMP/out" "1 tenants, 1 keys (1 active"

# other content survives a rewrite; so do the mode and a symlink
cat > "$F" <<EOF
{
  "tenants": {
    "team-a": {
      "description": "keep me",
      "models": ["gpt-4o"],
      "limits": {"requests_per_minute": 60, "budget_per_month": 0.1},
      "keys": [
        {"id": "ci-bot", "sha256": "$(sha "$KEY1")",
         "created": "2026-11-01T00:00:00Z"}
      ]
    },
    "team-b": {"limits": {"concurrent": 3}}
  }
}
EOF
chmod 600 "$F"
ln -s "$F" "$TMP/link.json"

status_is 0 "create through a symlink" "$BIN" create --file "$TMP/link.json" \
    --tenant team-a
KEY2=$(cat "$TMP/out")
ok "second key" is_key "$KEY2"
ok "keys differ" test "$KEY1" != "$KEY2"
ok "symlink kept" test -L "$TMP/link.json"
ok "mode kept" test "$(stat -c %a "$F")" = 600
ok "description kept" contains "$F" '"description": "keep me"'
ok "models kept" contains "$F" '"gpt-4o"'
ok "decimal kept readable" contains "$F" '"budget_per_month": 0.1$'
ok "team-b kept" contains "$F" '"concurrent": 3'
ok "default id" contains "$F" '"id": "key-'
ok "no temporary files left" test "$(ls "$TMP" | grep -c tenants.json)" = 1

status_is 1 "duplicate id" "$BIN" create --file "$F" --tenant team-a \
    --id ci-bot
status_is 1 "unknown tenant" "$BIN" create --file "$F" --tenant team-z
status_is 0 "create in team-b" "$BIN" create --file "$F" --tenant team-b \
    --id svc --expires 30d

status_is 0 "list" "$BIN" list --file "$F"
ok "list shows ci-bot" contains "$TMP/out" "ci-bot"
ok "list shows team-b" contains "$TMP/out" "svc"
ok "list shows the digest prefix" contains "$TMP/out" "$(sha "$KEY1" | cut -c1-12)"
ok "list shows no full digest" lacks "$TMP/out" "$(sha "$KEY1")"
ok "list shows no key" lacks "$TMP/out" "$KEY1"
ok "list: active" contains "$TMP/out" "ci-bot .* active"

status_is 0 "list one tenant" "$BIN" list --file "$F" --tenant team-b
ok "filtered list" lacks "$TMP/out" "ci-bot"
status_is 1 "list unknown tenant" "$BIN" list --file "$F" --tenant nope

status_is 0 "revoke" "$BIN" revoke --file "$F" --tenant team-a --id ci-bot
ok "revoke reminds to reload" contains "$TMP/err" "nginx -s reload"
status_is 0 "list after revoke" "$BIN" list --file "$F" --tenant team-a
ok "list: revoked" contains "$TMP/out" "ci-bot .* revoked"
status_is 0 "revoke again" "$BIN" revoke --file "$F" --tenant team-a \
    --id ci-bot
ok "already revoked" contains "$TMP/err" "already revoked"
status_is 1 "revoke unknown id" "$BIN" revoke --file "$F" --tenant team-a \
    --id nope
status_is 2 "revoke without --id" "$BIN" revoke --file "$F" --tenant team-a

# an invalid file is refused, not rewritten
printf '{"tenants": {"t": {"limits": {"requests_per_minute": -1}}}}' \
    > "$TMP/bad.json"
status_is 1 "check invalid" "$BIN" check --file "$TMP/bad.json"
ok "check names the field" contains "$TMP/err" "limits.requests_per_minute"
status_is 1 "create in invalid" "$BIN" create --file "$TMP/bad.json" \
    --tenant t
ok "invalid file untouched" contains "$TMP/bad.json" '-1}}}}'
head -c 40 "$F" > "$TMP/trunc.json"
status_is 1 "check truncated" "$BIN" check --file "$TMP/trunc.json"


# --- the Redis store ----------------------------------------------------

if command -v redis-server >/dev/null 2>&1; then
    PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket();
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$PORT" --bind 127.0.0.1 --save '' \
        --appendonly no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
    REDIS_PID=$!
    R="redis://127.0.0.1:$PORT"

    i=0
    while ! redis-cli -p "$PORT" ping >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -gt 50 ] && { echo "redis-server did not start" >&2; exit 1; }
        sleep 0.1
    done

    status_is 0 "redis create" "$BIN" create --redis "$R" --tenant team-a \
        --id ci --rpm 5
    RK=$(cat "$TMP/out")
    D=$(sha "$RK")
    ok "redis: stdout is the key" is_key "$RK"
    ok "redis: hash" test "$(redis-cli -p "$PORT" hget "aigw:key:$D" tenant)" = team-a
    ok "redis: id" test "$(redis-cli -p "$PORT" hget "aigw:key:$D" id)" = ci
    ok "redis: revoked 0" test "$(redis-cli -p "$PORT" hget "aigw:key:$D" revoked)" = 0
    ok "redis: expires 0" test "$(redis-cli -p "$PORT" hget "aigw:key:$D" expires)" = 0
    ok "redis: limits" test "$(redis-cli -p "$PORT" hget "aigw:key:$D" limits)" = '{"requests_per_minute":5}'
    ok "redis: set" test "$(redis-cli -p "$PORT" sismember aigw:tenant:team-a:keys "$D")" = 1
    ok "redis: no key stored" test -z "$(redis-cli -p "$PORT" --scan | grep -F "$RK")"

    status_is 0 "redis create, other prefix" "$BIN" create --redis "$R" \
        --prefix gw2 --tenant team-b --expires 2099-01-01T00:00:00Z
    D2=$(sha "$(cat "$TMP/out")")
    ok "redis: prefix" test "$(redis-cli -p "$PORT" hget "gw2:key:$D2" expires)" = 4070908800
    status_is 1 "redis duplicate id" "$BIN" create --redis "$R" \
        --tenant team-a --id ci
    status_is 2 "redis --create-tenant" "$BIN" create --redis "$R" \
        --tenant team-a --create-tenant

    status_is 0 "redis list" "$BIN" list --redis "$R"
    ok "redis list: ci active" contains "$TMP/out" "team-a .*ci .* active"
    ok "redis list: no key" lacks "$TMP/out" "$RK"
    ok "redis list: prefix scoped" lacks "$TMP/out" "team-b"

    status_is 0 "redis revoke" "$BIN" revoke --redis "$R" --tenant team-a \
        --id ci
    ok "redis: revoked 1" test "$(redis-cli -p "$PORT" hget "aigw:key:$D" revoked)" = 1
    status_is 0 "redis list after revoke" "$BIN" list --redis "$R" \
        --tenant team-a
    ok "redis list: revoked" contains "$TMP/out" "ci .* revoked"
    status_is 1 "redis revoke unknown" "$BIN" revoke --redis "$R" \
        --tenant team-a --id nope

    # usage: counters as the gateway writes them
    NOW=$(date +%s)
    MIN=$((NOW / 60)); DAY=$((NOW / 86400)); MON=$(date -u +%Y%m)
    redis-cli -p "$PORT" set "aigw:u:t:team-a:rq:m$MIN" 12 >/dev/null
    redis-cli -p "$PORT" set "aigw:u:t:team-a:tk:d$DAY" 5000 >/dev/null
    redis-cli -p "$PORT" set "aigw:u:t:team-a:cost:M$MON" 1234567 >/dev/null
    redis-cli -p "$PORT" set "aigw:u:k:team-a:ci-bot:rq:m$MIN" 3 >/dev/null
    redis-cli -p "$PORT" set "aigw:u:m:team-a:gpt-4o:tk:m$MIN" 777 >/dev/null
    redis-cli -p "$PORT" set "aigw:u:t:team-a:rq:m$((MIN - 5))" 99 >/dev/null
    redis-cli -p "$PORT" set "aigw:u:t:team-ab:rq:m$MIN" 98 >/dev/null

    status_is 0 "usage" "$BIN" usage --redis "$R" --tenant team-a --file "$F"
    ok "usage: requests vs limit" contains "$TMP/out" "tenant .*requests .*minute .* 12 .* 60 .* 48"
    ok "usage: tokens today" contains "$TMP/out" "tenant .*tokens .*day .* 5000"
    ok "usage: cost in dollars" contains "$TMP/out" '\$1.234567 .* \$0.100000 .* \$0.000000'
    ok "usage: key" contains "$TMP/out" "key ci-bot .*requests .*minute .* 3 "
    ok "usage: model" contains "$TMP/out" "model gpt-4o .*tokens .* 777"
    ok "usage: old windows ignored" lacks "$TMP/out" " 99 "
    ok "usage: other tenant ignored" lacks "$TMP/out" " 98 "
    status_is 2 "usage without --redis" "$BIN" usage --tenant team-a

    # an unreachable Redis fails quickly, it does not hang
    kill "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null; REDIS_PID=
    start=$(date +%s)
    status_is 1 "redis down" "$BIN" list --redis "$R" --timeout 2
    ok "redis down: quick" test $(( $(date +%s) - start )) -le 3
    ok "redis down: says so" contains "$TMP/err" "redis"
else
    echo "test_aigw_keys.sh: redis-server not installed: Redis part skipped"
fi

if [ "$failures" -ne 0 ]; then
    echo "test_aigw_keys.sh: $failures of $checks checks failed" >&2
    exit 1
fi

echo "test_aigw_keys.sh: $checks checks passed"
