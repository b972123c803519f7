#!/bin/sh
# Installs the official SDKs the tests drive the gateway with (npm registry).
set -e
cd "$(dirname "$0")"
if [ -d node_modules/openai ] && [ -d node_modules/@anthropic-ai/sdk ] \
        && [ node_modules -nt package.json ]; then
    exit 0
fi
command -v npm >/dev/null || { echo "aigw: npm is missing (Node.js 20)" >&2; exit 1; }
npm install --no-audit --no-fund --loglevel=error >/dev/null
touch node_modules
