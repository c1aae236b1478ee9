#!/usr/bin/env bash
# The dependency policy of deny.toml: licenses, bans and sources always;
# advisories where the RustSec database can be fetched. Installs cargo-deny
# from crates.io when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deny --version >/dev/null 2>&1; then
  echo "deny: installing cargo-deny"
  cargo install cargo-deny --locked -j2
fi
cargo deny --log-level error check licenses bans sources
if cargo deny --log-level error fetch db >/dev/null 2>&1; then
  cargo deny --log-level error check advisories
else
  echo "deny: advisories skipped: the RustSec advisory database cannot be fetched from this machine"
fi
