#!/usr/bin/env bash
# Forward auth behind a real proxy, measured on this machine in one go:
#   (a) nginx running deploy/nginx/keyshift.conf in front of keyshift's
#       /auth_request, against (b) the same nginx config in front of a static
#       200 auth endpoint (nginx `return 200`): the verifier's share of a
#       request through nginx, in requests/s and p99 (wrk);
#   (c) keyshift's gRPC Check against its HTTP /verify, the same token and
#       clients (keyshift-authz-load), with the verifier's CPU per request.
# The app behind nginx is an nginx `return 200` too, so neither run measures
# an application. Phase transition: the token is an RS256 one the issuer
# minted, repeated (a client reuses its token: token-cache hits).
# Everything runs in a network namespace of its own (the deploy config's
# fixed ports). Figures belong to a quiet machine.
#
# Usage: benches/forward-auth.sh [seconds per run, default 10]
# KEYSHIFT_BIN_DIR=dir runs the keyshift and keyshift-authz-load found there
# instead of building target/release's.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${1:-10}
TARGET=${CARGO_TARGET_DIR:-target}

if [ "${KEYSHIFT_IN_NETNS:-}" != 1 ]; then
    for tool in nginx wrk; do
        command -v $tool >/dev/null || {
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $tool >/dev/null
        }
    done
    [ -n "${KEYSHIFT_BIN_DIR:-}" ] || cargo build -q -j2 --release -p keyshift -p keyshift-benches
    exec unshare -n env KEYSHIFT_IN_NETNS=1 KEYSHIFT_BIN_DIR="${KEYSHIFT_BIN_DIR:-$ROOT/$TARGET/release}" bash "$0" "$@"
fi

ip link set lo up
BIN=$KEYSHIFT_BIN_DIR
WORK=$(mktemp -d /tmp/keyshift-forward-auth-bench.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2; return 1
}

head -c 32 /dev/urandom | base64 | head -c 43 >"$WORK/hs256.secret"
HASH=$(printf 'secret-a' | "$BIN/keyshift" secret hash)
cat >"$WORK/keyshift.toml" <<TOML
phase = "transition"

[issuer]
listen = "127.0.0.1:8080"
issuer = "https://keyshift.test"
audience = "https://api.example.com"
hs256_secret_file = "hs256.secret"

[[issuer.clients]]
id = "svc-a"
secret_hash = "$HASH"
scopes = ["read", "write", "admin"]

[verifier]
listen = "127.0.0.1:8081"
grpc_listen = "127.0.0.1:8082"
issuer = "https://keyshift.test"
audience = "https://api.example.com"
jwks_url = "http://127.0.0.1:8080/.well-known/jwks.json"
hs256_secret_file = "hs256.secret"
TOML
"$BIN/keyshift" keys generate --config "$WORK/keyshift.toml" >/dev/null
"$BIN/keyshift" issuer --config "$WORK/keyshift.toml" >"$WORK/issuer.log" 2>&1 &
PIDS+=($!)
wait_port 8080
TOKEN=$("$BIN/keyshift" token --config "$WORK/keyshift.toml" --client svc-a)

# The harness around deploy/nginx/keyshift.conf: the app (and, for the
# baseline, the auth endpoint) as nginx `return 200` servers.
mkdir -p "$WORK/nginx"
ln -s "$ROOT/deploy/nginx/keyshift-protect.conf" "$WORK/nginx/keyshift-protect.conf"
nginx_conf() { # $1: extra server blocks
    cat >"$WORK/nginx/nginx.conf" <<CONF
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
worker_processes 1;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx;
    proxy_temp_path $WORK/nginx;
    server { listen 127.0.0.1:3000; location / { return 200 "app\n"; } }
    $1
    include $ROOT/deploy/nginx/keyshift.conf;
}
CONF
}
run_wrk() { # $1: label
    wrk -t1 -c32 -d"${SECS}s" --latency -H "Authorization: Bearer $TOKEN" http://127.0.0.1:80/orders/7 \
        >"$WORK/wrk.out"
    local rps p99 non2xx
    rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
    p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk.out")
    non2xx=$(awk '/Non-2xx/ {print $5}' "$WORK/wrk.out")
    printf '%-34s %10s req/s  p99 %8s  non-2xx %s\n' "$1" "$rps" "$p99" "${non2xx:-0}"
}

echo "== nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), 1 worker, wrk 32 connections, ${SECS}s per run"
"$BIN/keyshift" verifier --config "$WORK/keyshift.toml" >"$WORK/verifier.log" 2>&1 &
VERIFIER=$!
PIDS+=($VERIFIER)
wait_port 8081; wait_port 8082
nginx_conf ""
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
NGINX=$!
PIDS+=($NGINX)
wait_port 80
run_wrk "nginx + keyshift /auth_request"
echo "== keyshift alone, same token: gRPC Check vs HTTP /verify (16 clients; verifier CPU per request)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$VERIFIER/stat"; }
for mode in grpc http; do
    port=8082; [ $mode = http ] && port=8081
    before=$(cpu_ticks)
    line=$("$BIN/keyshift-authz-load" $mode 127.0.0.1:$port "$TOKEN" "$SECS" 16)
    ticks=$(( $(cpu_ticks) - before ))
    requests=$(echo "$line" | sed 's/.*(\([0-9]*\) requests).*/\1/')
    echo "$line  verifier CPU $(( ticks * 1000000 / $(getconf CLK_TCK) / (requests > 0 ? requests : 1) )) µs/request"
done
kill "$NGINX" "$VERIFIER"; wait "$NGINX" "$VERIFIER" 2>/dev/null || true

nginx_conf 'server { listen 127.0.0.1:8081; location / { return 200; } }'
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
wait_port 80
run_wrk "nginx + static 200 auth endpoint"
