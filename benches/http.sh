#!/usr/bin/env bash
# HTTP throughput of `keyshift verifier` against a plain hyper "hello" ceiling,
# in one go, on loopback: (a) 30 000 distinct RS256 tokens against a verifier
# with `token_cache_size = 0`, so every request verifies a signature (a run
# sends more requests than tokens can be minted for it, and cycling tokens
# through a cache would let some hit), (b) a pool of 100 repeated RS256 tokens
# (token-cache hits), (c) a pool of 100 HS256 tokens, and, for reference,
# (d) the 30 000 distinct HS256 tokens (the HMAC path, no cache help).
#
# Per run: req/s, p99 and server CPU µs per request (from /proc/<pid>/stat),
# each also as a ratio of the ceiling's; the token-cache and key-cache hits and
# misses of the run (the verifier's /metrics scraped before and after it); and
# at the end the verifier's peak resident memory (VmHWM) against 64 MiB.
#
# Usage: benches/http.sh [seconds per run, default 10]
# BENCH_PROFILE=debug runs the debug binaries: a quick functional check only,
# its figures mean nothing. Figures belong to a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=64
TARGET=${CARGO_TARGET_DIR:-target}
PROFILE=${BENCH_PROFILE:-release}
MEM_GOAL_KIB=$((64 * 1024))

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)..." >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
case $PROFILE in
  release) cargo build -q -j2 --release -p keyshift -p keyshift-benches ;;
  debug) cargo build -q -j2 -p keyshift -p keyshift-benches ;;
  *) echo "BENCH_PROFILE must be release or debug" >&2; exit 2 ;;
esac
BIN=$TARGET/$PROFILE
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

# wait_ready ADDR: polls GET /readyz (the verifier has its JWKS keys) for at most 10 s.
wait_ready() {
  for _ in $(seq 100); do
    if curl -sf -o /dev/null "http://$1/readyz"; then
      return
    fi
    sleep 0.1
  done
  echo "verifier not ready after 10 s" >&2; curl -s "http://$1/keys" >&2 || true; exit 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

# cache_counts ADDR: "token_hit token_miss key_hit key_miss" from the verifier's /metrics.
cache_counts() {
  curl -sf "http://$1/metrics" | awk '
    /^keyshift_token_cache_total\{result="hit"\}/ { th = $2 }
    /^keyshift_token_cache_total\{result="miss"\}/ { tm = $2 }
    /^keyshift_key_cache_total\{result="hit"\}/ { kh = $2 }
    /^keyshift_key_cache_total\{result="miss"\}/ { km = $2 }
    END { printf "%d %d %d %d\n", th, tm, kh, km }'
}

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

# run LABEL ADDR PID TOKENS [VERIFIER]: one wrk run; records req/s, p99, CPU
# per request and, given the verifier's address, the run's cache counters.
declare -A RPS CPU P99 CACHE
run() {
  local label=$1 addr=$2 pid=$3 tokens=$4 verifier=${5:-}
  local before after out c0 c1
  [ -n "$verifier" ] && c0=$(cache_counts "$verifier")
  before=$(cpu_ticks "$pid")
  out=$(wrk -t1 -c$CONNS -d"${SECS}s" -s "$WORK/tokens.lua" "http://$addr/verify" -- "$tokens")
  after=$(cpu_ticks "$pid")
  read -r _ reqs p99us status_errors sock_errors < <(echo "$out" | grep '^RESULT')
  if [ "$status_errors" != 0 ] || [ "$sock_errors" != 0 ]; then
    echo "$label: $status_errors non-2xx and $sock_errors socket errors" >&2; echo "$out" >&2; exit 1
  fi
  RPS[$label]=$(awk -v r="$reqs" -v s="$SECS" 'BEGIN{printf "%.0f", r/s}')
  P99[$label]=$(awk -v p="$p99us" 'BEGIN{printf "%.2f", p/1000}')
  CPU[$label]=$(awk -v a="$after" -v b="$before" -v t="$TICK" -v r="$reqs" 'BEGIN{printf "%.2f", (a-b)/t/r*1e6}')
  if [ -n "$verifier" ]; then
    c1=$(cache_counts "$verifier")
    CACHE[$label]=$(echo "$c0 $c1" | awk '{printf "%d / %d | %d / %d", $5-$1, $6-$2, $7-$3, $8-$4}')
  else
    CACHE[$label]="— | —"
  fi
}

# The ceiling: the same accept loop answering "hello" (any path, any header).
echo x > "$WORK/empty.txt"
start hello "$BIN/keyshift-hello"
run hello "$ADDR" "$PID" "$WORK/empty.txt"

# keyshift: an issuer (to make keys) and a verifier reading them from its JWKS.
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
wait_ready "$VERIFIER"
# The same verifier without a token cache, for the distinct-token runs.
{ cat "$WORK/keyshift.toml"; echo 'token_cache_size = 0'; } > "$WORK/nocache.toml"
start nocache "$BIN/keyshift" verifier --config "$WORK/nocache.toml"
NOCACHE=$ADDR
NPID=$PID
wait_ready "$NOCACHE"

# Tokens: RS256 as the issuer signs in phase transition; HS256 as it signs in
# phase dual (same keys and secret, a copy of the config with the other phase).
# Pools and distinct sets do not overlap, so each run's cache counts are its own.
"$BIN/keyshift" token --config "$WORK/keyshift.toml" --client bench --count 30100 > "$WORK/rs.txt"
sed 's/^phase = "transition"/phase = "dual"/' "$WORK/keyshift.toml" > "$WORK/dual.toml"
"$BIN/keyshift" token --config "$WORK/dual.toml" --client bench --count 30100 > "$WORK/hs.txt"
for alg in rs hs; do
  head -100 "$WORK/$alg.txt" > "$WORK/$alg-pool.txt"
  tail -n +101 "$WORK/$alg.txt" > "$WORK/$alg-distinct.txt"
done

run rs256_distinct "$NOCACHE" "$NPID" "$WORK/rs-distinct.txt" "$NOCACHE"
run rs256_pool "$VERIFIER" "$VPID" "$WORK/rs-pool.txt" "$VERIFIER"
run hs256_pool "$VERIFIER" "$VPID" "$WORK/hs-pool.txt" "$VERIFIER"
run hs256_distinct "$NOCACHE" "$NPID" "$WORK/hs-distinct.txt" "$NOCACHE"
# The cached verifier's memory with its token cache full: fill it with one-off tokens.
run fill "$VERIFIER" "$VPID" "$WORK/rs-distinct.txt" "$VERIFIER"
HWM=$(awk '/^VmHWM/{print $2}' "/proc/$VPID/status")
RSS=$(awk '/^VmRSS/{print $2}' "/proc/$VPID/status")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else printf "n/a" }'; }
printf '\nwrk -t1 -c%d -d%ss, %s binaries, %s cores, %s\n' "$CONNS" "$SECS" "$PROFILE" "$(nproc)" "$(date -u +%F)"
printf 'ratios are of the hello ceiling: req/s (higher is better; the goal applies), p99 and CPU per request (lower is better)\n\n'
printf '| run | req/s | × ceiling | goal | p99 ms | × ceiling | server CPU µs/req | × ceiling | token cache hit / miss | key cache hit / miss |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
for label in hello rs256_distinct rs256_pool hs256_pool hs256_distinct; do
  case $label in
    hello) name="hello (ceiling)"; goal="";;
    rs256_distinct) name="(a) RS256, distinct tokens"; goal="≥ 0.45";;
    rs256_pool) name="(b) RS256, pool of 100"; goal="≥ 0.80";;
    hs256_pool) name="(c) HS256, pool of 100"; goal="≥ 0.75";;
    hs256_distinct) name="(d) HS256, distinct tokens"; goal="";;
  esac
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" \
    "${RPS[$label]}" "$(ratio "${RPS[$label]}" "${RPS[hello]}")" "$goal" \
    "${P99[$label]}" "$(ratio "${P99[$label]}" "${P99[hello]}")" \
    "${CPU[$label]}" "$(ratio "${CPU[$label]}" "${CPU[hello]}")" \
    "${CACHE[$label]}"
done
verdict=$([ "$HWM" -lt "$MEM_GOAL_KIB" ] && echo "under" || echo "OVER")
printf '\nverifier memory: peak (VmHWM) %d KiB = %.1f MiB, %s the 64 MiB goal; now (VmRSS) %.1f MiB, token cache full\n' \
  "$HWM" "$(awk -v k="$HWM" 'BEGIN{print k/1024}')" "$verdict" "$(awk -v k="$RSS" 'BEGIN{print k/1024}')"
