#!/bin/sh
# `make run`: nginx in the foreground on 127.0.0.1:$AIGW_PORT (8080) with
# nginx.conf.example.  Honours OPENAI_API_KEY, OPENAI_BASE_URL,
# ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL and AIGW_PORT.  With neither a key
# nor a base URL it runs offline against the bundled mock provider.
set -e

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN="$ROOT/build/run"
PORT=${AIGW_PORT:-8080}
MOCK_PID=""
NGINX_PID=""

cleanup() {
    trap - INT TERM EXIT
    [ -n "$NGINX_PID" ] && kill -QUIT "$NGINX_PID" 2>/dev/null || true
    [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

mkdir -p "$RUN"

if [ -z "$OPENAI_BASE_URL" ] && [ -z "$OPENAI_API_KEY" ]; then
    # offline default: the mock provider that the tests use
    fifo="$RUN/mock.ready"
    rm -f "$fifo"
    mkfifo "$fifo"
    /usr/bin/python3 "$ROOT/tests/mocks/mock_provider.py" --port 0 \
        > "$fifo" 2>"$RUN/mock.log" &
    MOCK_PID=$!
    read -r ready mock_port < "$fifo"
    rm -f "$fifo"
    OPENAI_BASE_URL="http://127.0.0.1:$mock_port/v1"
    echo "aigw: no OPENAI_API_KEY or OPENAI_BASE_URL: running offline" \
         "against the mock provider at $OPENAI_BASE_URL"
fi

OPENAI_BASE_URL=${OPENAI_BASE_URL:-https://api.openai.com/v1}

# offline, Anthropic goes to the mock too (it speaks both formats)
if [ -n "$MOCK_PID" ] && [ -z "$ANTHROPIC_BASE_URL" ]; then
    ANTHROPIC_BASE_URL="http://127.0.0.1:$mock_port/v1"
fi

# the Anthropic lines only when there is an Anthropic to reach: a name
# that cannot be resolved would stop nginx from starting
ANTHROPIC_SED="s|^x||"
if [ -n "$ANTHROPIC_BASE_URL" ] || [ -n "$ANTHROPIC_API_KEY" ]; then
    ANTHROPIC_SED="s|^    #anthropic |    |"
fi
ANTHROPIC_BASE_URL=${ANTHROPIC_BASE_URL:-https://api.anthropic.com/v1}

# the in-process engine, when a GGUF model is at hand
if [ -z "$AIGW_MODEL" ] && [ -f "$ROOT/../shared/models/stories260K.gguf" ]
then
    AIGW_MODEL="$ROOT/../shared/models/stories260K.gguf"
fi
ENGINE_SED="s|^x||"
if [ -n "$AIGW_MODEL" ] && [ -f "$AIGW_MODEL" ]; then
    ENGINE_SED="s|^    #engine \(.*\)AIGW_MODEL\(.*\)|    \1$AIGW_MODEL\2|; s|^    #engine |    |"
    echo "aigw: model \"tiny\" is served in-process from $AIGW_MODEL"
fi

sed -e "s|^load_module .*|load_module $ROOT/build/ngx_http_ai_gateway_module.so;|" \
    -e "s|listen 127.0.0.1:8080;|listen 127.0.0.1:$PORT;|" \
    -e "s|url=https://api.openai.com/v1|url=$OPENAI_BASE_URL|" \
    -e "s|url=https://api.anthropic.com/v1|url=$ANTHROPIC_BASE_URL|" \
    -e "$ENGINE_SED" \
    -e "$ANTHROPIC_SED" \
    "$ROOT/nginx.conf.example" > "$RUN/nginx.conf"

export OPENAI_API_KEY ANTHROPIC_API_KEY

/usr/sbin/nginx -t -q -p "$RUN" -c "$RUN/nginx.conf"

echo "aigw: listening on http://127.0.0.1:$PORT/v1 (Ctrl-C stops)"
echo "aigw: try: curl -s http://127.0.0.1:$PORT/v1/chat/completions" \
     "-H 'Content-Type: application/json'" \
     "-d '{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'"

/usr/sbin/nginx -p "$RUN" -c "$RUN/nginx.conf" -g "daemon off;" &
NGINX_PID=$!
wait "$NGINX_PID"
