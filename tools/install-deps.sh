#!/bin/sh
# Installs the Debian packages aigw needs, only those missing, quietly.
set -e

PKGS="nginx nginx-dev libjansson-dev libhiredis-dev libpcre2-dev libssl-dev
      libcurl4-openssl-dev redis-server python3-pytest wrk openssl
      build-essential pkg-config clang"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
            | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

# the SDK tests run on Node.js (20 is expected; Debian's own is a fallback)
if ! command -v node >/dev/null 2>&1; then
    missing="$missing nodejs npm"
fi

[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "aigw: missing Debian packages:$missing" >&2
    echo "aigw: run as root, or: sudo apt-get install$missing" >&2
    exit 1
fi

echo "aigw: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# nginx's postinst starts the service; keep it from taking port 80 here
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -qq --no-install-recommends $missing >/dev/null
