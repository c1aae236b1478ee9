#!/bin/sh
# deploy/stage-rootfs.sh BIN OUT: the root file system of the keyshift image:
# the binary as /keyshift, the shared libraries ldd names (keyshift links
# only the C library and libgcc; its crypto is built in), and the CA bundle
# for https JWKS URLs. Run by deploy/Dockerfile's build stage and, on a
# prebuilt binary, by scripts/deploy-tests.sh, so both stage the same files.
set -eu
bin=$1
out=$2
mkdir -p "$out/etc/ssl/certs"
cp "$bin" "$out/keyshift"
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$out$(dirname "$lib")"
    cp -L "$lib" "$out$lib"
done
cp /etc/ssl/certs/ca-certificates.crt "$out/etc/ssl/certs/ca-certificates.crt"
