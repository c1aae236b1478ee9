#!/usr/bin/env bash
# make test-proxies: keyshift behind the real nginx, Caddy and HAProxy from
# Debian's packages, each running the config in deploy/<proxy>/ byte for byte,
# checked for every outcome of docs/forward-auth.md (scripts/proxy_e2e.py);
# then the issuer's metadata through authlib's strict validators.
#
# Everything runs in a network namespace of its own (unshare -n): the deploy
# configs keep their real addresses (proxy on :80, verifier on 127.0.0.1:8081,
# app on 127.0.0.1:3000) and no port can collide with anything on the machine.
# A proxy whose package cannot be installed is skipped with one line.
# KEYSHIFT_BIN=path runs that binary instead of building target/debug/keyshift.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-target}

if [ "${KEYSHIFT_IN_NETNS:-}" != 1 ]; then
    # Outside the namespace: what needs the package registries.
    missing=()
    command -v nginx >/dev/null || missing+=(nginx)
    command -v caddy >/dev/null || missing+=(caddy)
    command -v haproxy >/dev/null || missing+=(haproxy)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing ${missing[*]} (Debian packages)"
        if apt-get update -qq >/dev/null 2>&1; then
            for pkg in "${missing[@]}"; do
                # The packages' own services are not started (no init here; policy-rc.d says so where there is one).
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null 2>&1 \
                    || echo "SKIP $pkg: the Debian package could not be installed"
            done
        else
            echo "SKIP ${missing[*]}: apt-get update failed"
        fi
    fi
    if ! unshare -n true 2>/dev/null; then
        echo "SKIP proxy tests: cannot create a network namespace (unshare -n needs root)"
        exit 0
    fi
    if [ -z "${KEYSHIFT_BIN:-}" ]; then
        echo "== cargo build -p keyshift"
        cargo build -j2 -q -p keyshift
    fi
    VENV=$TARGET_DIR/authlib-venv
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import authlib' 2>/dev/null; then
        echo "== authlib in $VENV (PyPI)"
        python3 -m venv "$VENV" >/dev/null 2>&1 || { rm -rf "$VENV"; echo "SKIP authlib: python3 -m venv failed"; }
        [ -x "$VENV/bin/pip" ] && { "$VENV/bin/pip" install -q authlib >/dev/null 2>&1 || echo "SKIP authlib: pip install failed"; }
    fi
    exec unshare -n env KEYSHIFT_IN_NETNS=1 KEYSHIFT_BIN="${KEYSHIFT_BIN:-$ROOT/$TARGET_DIR/debug/keyshift}" \
        KEYSHIFT_VENV="$ROOT/$VENV" bash "$0" "$@"
fi

# === inside the namespace ===
ip link set lo up
WORK=$(mktemp -d /tmp/keyshift-proxy-tests.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
BIN=$KEYSHIFT_BIN
PASSED=0
FAILED=0

# Waits (at most 10 s) until something listens on 127.0.0.1:$1.
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1 after 10 s"; return 1
}

start() { # name, command...: runs in the background, log in $WORK/name.log
    local name=$1; shift
    "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    LAST_PID=$!
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# keyshift: phase dual, so HS256 tokens verify with the shared secret while
# RS256 ones need the JWKS, whose URL is dead: "keys unavailable" on demand.
head -c 32 /dev/urandom | base64 | head -c 43 >"$WORK/hs256.secret"
HASH=$(printf 'secret-a' | "$BIN" secret hash)
cat >"$WORK/keyshift.toml" <<TOML
phase = "dual"

[issuer]
listen = "127.0.0.1:8080"
issuer = "https://keyshift.test/tenant-a"
audience = "https://api.example.com"
hs256_secret_file = "hs256.secret"

[[issuer.clients]]
id = "svc-a"
secret_hash = "$HASH"
scopes = ["read", "write"]

[verifier]
listen = "127.0.0.1:8081"
issuer = "https://keyshift.test/tenant-a"
audience = "https://api.example.com"
jwks_url = "http://127.0.0.1:9/.well-known/jwks.json"
hs256_secret_file = "hs256.secret"
jwks_request_wait = "200ms"
jwks_connect_timeout = "200ms"
grpc_listen = "127.0.0.1:8082"
TOML
start issuer "$BIN" issuer --config "$WORK/keyshift.toml"
start verifier "$BIN" verifier --config "$WORK/keyshift.toml"
start upstream python3 "$ROOT/scripts/proxy_e2e.py" upstream 3000
wait_port 8080; wait_port 8081; wait_port 8082; wait_port 3000
TOKEN=$("$BIN" token --config "$WORK/keyshift.toml" --client svc-a)

# check NAME MALFORMED_STATUS [DUPLICATE]: the client's checks through the
# proxy on :80 (scripts/proxy_e2e.py says what the arguments mean).
check() {
    wait_port 80
    local name=$1; shift
    if python3 "$ROOT/scripts/proxy_e2e.py" check "$name" http://127.0.0.1:80 "$TOKEN" "$WORK/hs256.secret" "$@" \
        >"$WORK/$name.out"; then :; fi
    cat "$WORK/$name.out"
    PASSED=$((PASSED + $(grep -c '^ok ' "$WORK/$name.out" || true)))
    FAILED=$((FAILED + $(grep -c '^FAIL ' "$WORK/$name.out" || true)))
}

if command -v nginx >/dev/null; then
    echo "== nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'): deploy/nginx/keyshift.conf"
    mkdir -p "$WORK/nginx"
    # The harness around the tested file: where nginx keeps its state, and
    # keyshift-protect.conf where keyshift.conf's relative include finds it.
    ln -s "$ROOT/deploy/nginx/keyshift-protect.conf" "$WORK/nginx/keyshift-protect.conf"
    cat >"$WORK/nginx/nginx.conf" <<CONF
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events {}
http {
    access_log off;
    client_body_temp_path $WORK/nginx;
    proxy_temp_path $WORK/nginx;
    include $ROOT/deploy/nginx/keyshift.conf;
}
CONF
    start nginx nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;'
    # nginx passes on no 400 from auth_request (401 invalid_request instead),
    # and refuses two Authorization headers itself.
    check nginx 401 proxy-400
    stop "$LAST_PID"
else
    echo "SKIP nginx: not installed"
fi

if command -v caddy >/dev/null; then
    echo "== caddy $(caddy version | cut -d' ' -f1): deploy/caddy/Caddyfile"
    # Caddy's state (autosave, certificates it never needs here) stays in $WORK.
    start caddy env HOME="$WORK" XDG_CONFIG_HOME="$WORK" XDG_DATA_HOME="$WORK" \
        caddy run --adapter caddyfile --config "$ROOT/deploy/caddy/Caddyfile"
    check caddy 400
    stop "$LAST_PID"
else
    echo "SKIP caddy: not installed"
fi

if command -v haproxy >/dev/null; then
    echo "== haproxy $(haproxy -v | head -1 | cut -d' ' -f3): deploy/haproxy/haproxy.cfg"
    start haproxy haproxy -db -f "$ROOT/deploy/haproxy/haproxy.cfg"
    check haproxy 400
    stop "$LAST_PID"
else
    echo "SKIP haproxy: not installed"
fi

echo "== authlib: the issuer's metadata"
if [ -x "$KEYSHIFT_VENV/bin/python" ]; then
    if "$KEYSHIFT_VENV/bin/python" "$ROOT/scripts/metadata-check.py" http://127.0.0.1:8080 /tenant-a >"$WORK/authlib.out"; then :; fi
    cat "$WORK/authlib.out"
    PASSED=$((PASSED + $(grep -c '^ok ' "$WORK/authlib.out" || true)))
    FAILED=$((FAILED + $(grep -c '^FAIL ' "$WORK/authlib.out" || true)))
else
    echo "SKIP authlib: no venv"
fi

echo "proxy-tests: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
