#!/usr/bin/env bash
# The verifier's /verify over TLS against plain HTTP, on this machine, same
# token, same load: wrk (HTTP/1.1 keep-alive, 32 connections) against
#   (a) listen plain HTTP, (b) listen with tls_cert_file/tls_key_file;
# and h2load (HTTP/2 over TLS by ALPN, 32 connections x 10 streams) against (b).
# Phase transition: the token is an RS256 one the issuer minted, repeated
# (token-cache hits), so the figures isolate the transport. One service at a
# time, in a network namespace of its own (fixed ports); a test CA from
# openssl. Figures belong to a quiet machine; docs/performance.md, "TLS".
#
# Usage: benches/tls.sh [seconds per run, default 10]
# KEYSHIFT_BIN_DIR=dir runs the keyshift found there instead of building
# target/release's.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${1:-10}
TARGET=${CARGO_TARGET_DIR:-target}

if [ "${KEYSHIFT_IN_NETNS:-}" != 1 ]; then
    need=()
    command -v wrk >/dev/null || need+=(wrk)
    command -v h2load >/dev/null || need+=(nghttp2-client)
    command -v openssl >/dev/null || need+=(openssl)
    if [ ${#need[@]} -gt 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    [ -n "${KEYSHIFT_BIN_DIR:-}" ] || cargo build -q -j2 --release -p keyshift
    exec unshare -n env KEYSHIFT_IN_NETNS=1 KEYSHIFT_BIN_DIR="${KEYSHIFT_BIN_DIR:-$ROOT/$TARGET/release}" bash "$0" "$@"
fi

ip link set lo up
BIN=$KEYSHIFT_BIN_DIR/keyshift
WORK=$(mktemp -d /tmp/keyshift-tls-bench.XXXXXX)
PID=
cleanup() {
    [ -z "$PID" ] || kill "$PID" 2>/dev/null || true
    [ -z "${ISSUER:-}" ] || kill "$ISSUER" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"

# A test CA and a server certificate for localhost and 127.0.0.1 (P-256).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj "/CN=keyshift bench CA" -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=localhost" -keyout tls.key -out tls.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >ext.cnf
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
    -extfile ext.cnf -out tls.crt 2>/dev/null
head -c 32 /dev/urandom | base64 | head -c 43 >hs256.secret

write_config() { # $1 = extra [verifier] lines
    cat >keyshift.toml <<EOF
phase = "transition"

[issuer]
listen = "127.0.0.1:18080"
issuer = "http://127.0.0.1:18080"
audience = "https://api.bench"
hs256_secret_file = "hs256.secret"

[[issuer.clients]]
id = "bench"
secret_hash = "sha256:$(printf 'bench-secret' | sha256sum | cut -d' ' -f1)"
scopes = ["read"]

[verifier]
listen = "127.0.0.1:18081"
admin_listen = "127.0.0.1:19091"
issuer = "http://127.0.0.1:18080"
audience = "https://api.bench"
jwks_url = "http://127.0.0.1:18080/.well-known/jwks.json"
hs256_secret_file = "hs256.secret"
$1
EOF
}

wait_port() {
    for _ in $(seq 100); do
        curl -s -o /dev/null -k "$1" && return 0
        sleep 0.1
    done
    echo "nothing answers $1" >&2
    exit 1
}

write_config ""
"$BIN" keys generate --config keyshift.toml >/dev/null
"$BIN" issuer --config keyshift.toml >issuer.out 2>issuer.log &
ISSUER=$!
wait_port http://127.0.0.1:18080/healthz
TOKEN=$(curl -s -d 'grant_type=client_credentials&client_id=bench&client_secret=bench-secret' \
    http://127.0.0.1:18080/oauth/token | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$TOKEN" ] || { echo "no token" >&2; exit 1; }

start_verifier() {
    "$BIN" verifier --config keyshift.toml >verifier.out 2>verifier.log &
    PID=$!
    wait_port "$1/readyz"
    curl -s -o /dev/null -w '%{http_code}' -k -H "Authorization: Bearer $TOKEN" "$1/verify" | grep -q 200 \
        || { echo "the token does not verify at $1" >&2; exit 1; }
}
stop_verifier() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }

wrk_run() { # $1 = label, $2 = url
    local out rps p99
    out=$(wrk -t2 -c32 -d"${SECS}s" --latency -H "Authorization: Bearer $TOKEN" "$2/verify")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    printf '%-34s %12s req/s   p99 %s\n' "$1" "$rps" "$p99"
}

echo "verify over HTTP/1.1 keep-alive (wrk -t2 -c32, ${SECS}s), phase transition, RS256 token"
start_verifier http://127.0.0.1:18081
wrk_run "plain HTTP/1.1" http://127.0.0.1:18081
stop_verifier

write_config 'tls_cert_file = "tls.crt"
tls_key_file = "tls.key"'
start_verifier https://localhost:18081
wrk_run "TLS 1.3 HTTP/1.1" https://localhost:18081
out=$(h2load -D "$SECS" -c 32 -m 10 -t 2 -H "Authorization: Bearer $TOKEN" https://localhost:18081/verify 2>&1)
rps=$(echo "$out" | awk '/^finished in/ {print $4}')
proto=$(echo "$out" | awk '/Application protocol/ {print $3}')
ok=$(echo "$out" | awk '/^status codes:/ {print $3}')
printf '%-34s %12s req/s   (%s 2xx, protocol %s)\n' "TLS 1.3 HTTP/2 (h2load -c32 -m10)" "$rps" "$ok" "$proto"
stop_verifier
