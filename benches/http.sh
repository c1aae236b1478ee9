#!/usr/bin/env bash
# HTTP throughput of `keyshift verifier` against a plain hyper "hello" ceiling,
# in one go, on loopback: (a) distinct RS256 tokens (every request misses the
# token cache), (b) a pool of 100 repeated RS256 tokens, (c) HS256 tokens.
# Prints req/s, p99, server CPU-seconds per request (from /proc) and each as a
# ratio of the ceiling. Usage: benches/http.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=64
TARGET=${CARGO_TARGET_DIR:-target}

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)..." >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
cargo build -q -j2 --release -p keyshift -p keyshift-benches
BIN=$TARGET/release
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# start NAME CMD...: runs CMD in the background, waits for its "listening on"
# line; sets ADDR and PID.
start() {
  local name=$1; shift
  "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 100); do
    if grep -q "listening on http://" "$WORK/$name.out" 2>/dev/null; then
      ADDR=$(sed -nE 's/.*listening on http:\/\/([^ ]+).*/\1/p' "$WORK/$name.out" | head -1)
      return
    fi
    sleep 0.1
  done
  echo "$name did not start" >&2; cat "$WORK/$name.err" >&2; exit 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

# Lua for wrk: cycle through tokens from a file, one Authorization header each.
cat > "$WORK/tokens.lua" <<'LUA'
local tokens = {}
local i = 0
function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
end
function request()
  i = i % #tokens + 1
  return wrk.format("GET", "/verify", { ["Authorization"] = "Bearer " .. tokens[i] })
end
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %.1f %d %d\n", summary.requests, latency:percentile(99), summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA

# run LABEL ADDR PID [tokens file]: prints one result line.
declare -A RPS CPU P99
run() {
  local label=$1 addr=$2 pid=$3 tokens=${4:-}
  local before after out
  before=$(cpu_ticks "$pid")
  if [ -n "$tokens" ]; then
    out=$(wrk -t1 -c$CONNS -d"${SECS}s" -s "$WORK/tokens.lua" "http://$addr/verify" -- "$tokens")
  else
    out=$(wrk -t1 -c$CONNS -d"${SECS}s" -s "$WORK/tokens.lua" "http://$addr/" -- "$WORK/empty.txt")
  fi
  after=$(cpu_ticks "$pid")
  read -r _ reqs p99us status_errors sock_errors < <(echo "$out" | grep '^RESULT')
  if [ "$status_errors" != 0 ] || [ "$sock_errors" != 0 ]; then
    echo "$label: $status_errors non-2xx and $sock_errors socket errors" >&2; echo "$out" >&2; exit 1
  fi
  RPS[$label]=$(awk -v r="$reqs" -v s="$SECS" 'BEGIN{printf "%.0f", r/s}')
  P99[$label]=$(awk -v p="$p99us" 'BEGIN{printf "%.2f", p/1000}')
  CPU[$label]=$(awk -v a="$after" -v b="$before" -v t="$TICK" -v r="$reqs" 'BEGIN{printf "%.2f", (a-b)/t/r*1e6}')
}

# The ceiling.
echo x > "$WORK/empty.txt"
start hello "$BIN/keyshift-hello"
run hello "$ADDR" "$PID"

# keyshift: issuer (to make keys) and a verifier reading them from the JWKS.
head -c 32 /dev/urandom | base64 | tr -d '=+/\n' > "$WORK/hs256.secret"
HASH=$(printf 'bench-secret' | "$BIN/keyshift" secret hash)
cat > "$WORK/keyshift.toml" <<TOML
phase = "transition"
[issuer]
listen = "127.0.0.1:0"
issuer = "http://bench"
audience = "https://api.bench"
token_ttl = "1h"
hs256_secret_file = "hs256.secret"
[[issuer.clients]]
id = "bench"
secret_hash = "$HASH"
scopes = ["read"]
TOML
start issuer "$BIN/keyshift" issuer --config "$WORK/keyshift.toml"
ISSUER=$ADDR
cat >> "$WORK/keyshift.toml" <<TOML
[verifier]
listen = "127.0.0.1:0"
issuer = "http://bench"
audience = "https://api.bench"
jwks_url = "http://$ISSUER/.well-known/jwks.json"
hs256_secret_file = "hs256.secret"
TOML
start verifier "$BIN/keyshift" verifier --config "$WORK/keyshift.toml"
VERIFIER=$ADDR
VPID=$PID
sleep 0.5

# (a) distinct RS256: more tokens than the token cache (10 000) holds, cycled in order.
"$BIN/keyshift" token --config "$WORK/keyshift.toml" --client bench --count 30000 > "$WORK/rs-distinct.txt"
head -100 "$WORK/rs-distinct.txt" > "$WORK/rs-pool.txt"
sed -i 's/^phase = "transition"/phase = "dual"/' "$WORK/keyshift.toml"
"$BIN/keyshift" token --config "$WORK/keyshift.toml" --client bench --count 100 > "$WORK/hs.txt"
run rs256_distinct "$VERIFIER" "$VPID" "$WORK/rs-distinct.txt"
run rs256_pool "$VERIFIER" "$VPID" "$WORK/rs-pool.txt"
run hs256 "$VERIFIER" "$VPID" "$WORK/hs.txt"
RSS=$(awk '/VmRSS/{print $2}' "/proc/$VPID/status")
CACHE=$(curl -s "http://$VERIFIER/metrics" | grep -E '^keyshift_(token|key)_cache_total' | tr '\n' ' ')

printf '\nwrk -t1 -c%d -d%ss on %s cores, %s\n\n' "$CONNS" "$SECS" "$(nproc)" "$(date -u +%F)"
printf '| run | req/s | p99 ms | server CPU µs/req | req/s vs ceiling | goal |\n|---|---|---|---|---|---|\n'
for label in hello rs256_distinct rs256_pool hs256; do
  ratio=$(awk -v a="${RPS[$label]}" -v b="${RPS[hello]}" 'BEGIN{printf "%.2f", a/b}')
  case $label in hello) goal="ceiling";; rs256_distinct) goal="≥ 0.45";; rs256_pool) goal="≥ 0.80";; hs256) goal="≥ 0.75";; esac
  printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "${RPS[$label]}" "${P99[$label]}" "${CPU[$label]}" "$ratio" "$goal"
done
printf '\nverifier RSS after the runs (token cache full): %s KiB\ncache counters: %s\n' "$RSS" "$CACHE"
