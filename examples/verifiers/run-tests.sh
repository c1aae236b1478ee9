#!/usr/bin/env bash
# The example verifiers in other languages (python/: PyJWT + PyJWKClient,
# node/: jose) against a live keyshift issuer -- the real binary, on
# 127.0.0.1:0 -- through all four phases, switched by config edit + SIGHUP.
# In each phase every example gets keyshift's own token, the tokens of an
# independent legacy issuer (minted by that language's library, not by
# keyshift) and forged ones (alg none, alg confusion), and must decide each
# as keyshift's verifier would. A plain PyJWT verifier configured like the
# old system (its iss, no typ, kid or aud checks) must accept keyshift's
# HS256 tokens in phases legacy and dual ([issuer.legacy]).
#
# PyJWT and jose are installed into OUT_DIR (under target/), never into the
# system; a second run reuses them. A language is skipped, with one line,
# only when its interpreter is missing.
#
#   examples/verifiers/run-tests.sh KEYSHIFT_BINARY OUT_DIR
set -euo pipefail

usage="usage: run-tests.sh KEYSHIFT_BINARY OUT_DIR"
here=$(cd "$(dirname "$0")" && pwd)
keyshift=$(realpath "${1:?$usage}")
mkdir -p "${2:?$usage}"
out=$(cd "$2" && pwd)

langs=()
if command -v python3 >/dev/null; then
    langs+=(python)
else
    echo "examples/verifiers: skipped the Python verifier: python3 not found"
fi
if command -v node >/dev/null && command -v npm >/dev/null; then
    langs+=(node)
else
    echo "examples/verifiers: skipped the Node verifier: node or npm not found"
fi
[ ${#langs[@]} -gt 0 ] || exit 0

stamp_of() { sha256sum "$1" | cut -c1-16; }

install_python() {
    local venv=$out/python-venv
    local stamp=$venv/.installed-$(stamp_of "$here/python/requirements.txt")
    if [ ! -e "$stamp" ]; then
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/python/requirements.txt"
        touch "$stamp"
    fi
}

install_node() {
    local dir=$out/node
    mkdir -p "$dir"
    local stamp=$dir/.installed-$(stamp_of "$here/node/package.json")
    if [ ! -e "$stamp" ]; then
        rm -rf "$dir/node_modules"
        cp "$here/node/package.json" "$dir/"
        (cd "$dir" && npm install --silent --no-audit --no-fund --no-package-lock >/dev/null)
        touch "$stamp"
    fi
    # Beside node_modules, so that `import 'jose'` resolves.
    cp "$here/node/"*.mjs "$dir/"
}

for lang in "${langs[@]}"; do "install_$lang"; done

# --- a keyshift issuer on loopback ----------------------------------------
run=$out/run
rm -rf "$run"
mkdir -p "$run"
head -c 24 /dev/urandom | base64 | tr -d '\n' >"$run/hs256.secret" # 32 bytes
hash=$(printf 's3cret' | "$keyshift" secret hash)

write_config() {
    cat >"$run/keyshift.toml" <<EOF
phase = "$1"

[issuer]
listen = "127.0.0.1:0"
issuer = "http://127.0.0.1"
audience = "https://api.test"
hs256_secret_file = "hs256.secret"
# The old fleet's shape for HS256 tokens (legacy and dual).
legacy = { issuer = "legacy-auth", typ = "JWT", kid = false, audience = "" }

[[issuer.clients]]
id = "svc-a"
secret_hash = "$hash"
scopes = ["orders:read"]
EOF
}

write_config legacy
"$keyshift" issuer --config "$run/keyshift.toml" >"$run/issuer.out" 2>"$run/issuer.log" &
issuer_pid=$!
trap 'kill "$issuer_pid" 2>/dev/null || true' EXIT

# Bounded waits: 200 x 0.05 s.
wait_for() {
    for _ in $(seq 200); do
        if eval "$1"; then return 0; fi
        sleep 0.05
    done
    echo "examples/verifiers: timed out waiting for: $2" >&2
    cat "$run/issuer.log" >&2
    exit 1
}
wait_for 'grep -q "listening on http://" "$run/issuer.out"' "the issuer's listening line"
addr=$(sed -n 's|.*listening on http://\([0-9.:]*\).*|\1|p' "$run/issuer.out" | head -1)
jwks_url=http://$addr/.well-known/jwks.json

token() {
    curl -sf -d grant_type=client_credentials -d client_id=svc-a -d client_secret=s3cret \
        "http://$addr/oauth/token" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p'
}

# The examples' config: keyshift's key names, the legacy profile included.
example_config() {
    cat >"$run/verifier-$1.json" <<EOF
{
  "phase": "$1",
  "issuer": "http://127.0.0.1",
  "audience": "https://api.test",
  "hs256_secret_file": "$run/hs256.secret",
  "jwks_url": "$jwks_url",
  "legacy": {"issuers": ["legacy-auth"], "audience_required": false, "subject_claim": "user_id", "scope_claim": "scp"}
}
EOF
}

mint() { # LANG [JWKS_URL]
    case $1 in
    python) "$out/python-venv/bin/python" "$here/python/mint_tokens.py" "$run/hs256.secret" ${2:+"$2"} ;;
    node) node "$out/node/mint-tokens.mjs" "$run/hs256.secret" ${2:+"$2"} ;;
    esac
}

verify() { # LANG PHASE < "NAME TOKEN" lines
    case $1 in
    python) "$out/python-venv/bin/python" "$here/python/keyshift_verify.py" "$run/verifier-$2.json" ;;
    node) node "$out/node/keyshift-verify.mjs" "$run/verifier-$2.json" ;;
    esac
}

failures=0
expect() { # LANG PHASE DECISIONS NAME WANT...
    local lang=$1 phase=$2 decisions=$3 name=$4
    shift 4
    local line
    line=$(grep "^$name " <<<"$decisions" || true)
    for want in "$@"; do
        if [[ $line != *"$want"* ]]; then
            echo "FAIL $lang $phase $name: want '$want', got '${line:-nothing}'"
            failures=$((failures + 1))
        fi
    done
}

hs_from_dual=
for phase in legacy dual transition asymmetric; do
    if [ "$phase" != legacy ]; then
        write_config "$phase"
        kill -HUP "$issuer_pid"
        wait_for "curl -sf http://$addr/metrics | grep -q 'keyshift_phase_info{phase=\"$phase\"} 1'" "phase $phase"
    fi
    example_config "$phase"
    ks=$(token)
    [ "$phase" = dual ] && hs_from_dual=$ks
    case $phase in legacy | dual) signs=HS256 ;; *) signs=RS256 ;; esac
    for lang in "${langs[@]}"; do
        tokens="ks $ks"$'\n'$(mint "$lang" "$([ "$phase" != legacy ] && echo "$jwks_url")")
        [ -n "$hs_from_dual" ] && [ "$phase" != dual ] && tokens+=$'\n'"hs_from_dual $hs_from_dual"
        decisions=$(verify "$lang" "$phase" <<<"$tokens")
        [ -n "${VERBOSE:-}" ] && sed "s/^/  $lang $phase: /" <<<"$decisions"
        expect "$lang" "$phase" "$decisions" ks " ok " "alg=$signs" "scope=orders:read "
        if [ "$phase" = asymmetric ]; then
            expect "$lang" "$phase" "$decisions" old "rejected: algorithm not accepted"
            expect "$lang" "$phase" "$decisions" hs_from_dual "rejected: algorithm not accepted"
        else
            expect "$lang" "$phase" "$decisions" old " ok " "sub=4711" "scope=orders:read,orders:write" "alg=HS256"
        fi
        [ "$phase" = transition ] && expect "$lang" "$phase" "$decisions" hs_from_dual " ok " "sub=svc-a"
        expect "$lang" "$phase" "$decisions" old_wrong_secret "rejected"
        expect "$lang" "$phase" "$decisions" none "rejected"
        [ "$phase" != legacy ] && expect "$lang" "$phase" "$decisions" confusion "rejected"
        echo "examples/verifiers: $lang, phase $phase: $(grep -c ' ok ' <<<"$decisions") accepted, $(grep -c ' rejected' <<<"$decisions") refused"
    done
    # A verifier of the old system, not yet replaced, accepts keyshift's
    # HS256 tokens in the legacy shape (iss legacy-auth, typ JWT, no kid, no aud).
    if [[ " ${langs[*]} " == *" python "* ]] && [ "$signs" = HS256 ]; then
        decisions=$("$out/python-venv/bin/python" "$here/python/old_verifier.py" "$run/hs256.secret" legacy-auth <<<"ks $ks")
        expect "old verifier (PyJWT)" "$phase" "$decisions" ks " ok " "sub=svc-a"
        echo "examples/verifiers: the old system's PyJWT verifier, phase $phase: keyshift's token $(cut -d' ' -f2 <<<"$decisions")"
    fi
done

if [ "$failures" -gt 0 ]; then
    echo "examples/verifiers: $failures unexpected decisions" >&2
    exit 1
fi
echo "examples/verifiers: ${langs[*]}: every decision as expected through all four phases"
