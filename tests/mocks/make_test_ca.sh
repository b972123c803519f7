#!/bin/sh
# Create a throw-away test CA and a localhost server certificate signed by it.
#   usage: make_test_ca.sh OUTDIR
# Produces OUTDIR/ca.crt, ca.key, server.crt, server.key
# (server cert: CN=localhost, subjectAltName DNS:localhost, IP:127.0.0.1, IP:::1).
set -eu
if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
OUT=$1
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM

cat > "$TMP/ca.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = aigw test CA
O = aigw tests
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CNF

cat > "$TMP/server.ext" <<'CNF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF

openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
    -keyout "$OUT/ca.key" -out "$OUT/ca.crt" -config "$TMP/ca.cnf" \
    >/dev/null 2>&1
openssl req -new -newkey rsa:2048 -nodes -sha256 \
    -keyout "$OUT/server.key" -out "$TMP/server.csr" -subj "/CN=localhost/O=aigw tests" \
    >/dev/null 2>&1
openssl x509 -req -in "$TMP/server.csr" -CA "$OUT/ca.crt" -CAkey "$OUT/ca.key" \
    -CAcreateserial -CAserial "$TMP/ca.srl" -out "$OUT/server.crt" -days 3650 -sha256 \
    -extfile "$TMP/server.ext" >/dev/null 2>&1
chmod 600 "$OUT/ca.key" "$OUT/server.key"
