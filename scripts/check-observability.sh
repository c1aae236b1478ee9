#!/usr/bin/env bash
# `make test-observability`: the alert rules and the dashboard, checked for real.
#  1. promtool check rules + promtool test rules (every alert fires, through its pending stage,
#     and stays silent in realistic cases; every recording rule computes what it says);
#  2. the dashboard (schema 41, a datasource variable) and every PromQL expression in it, collapsed
#     rows included, parsed by promtool;
#  3. a real Prometheus on loopback scraping a real issuer and verifier driven through phases
#     transition and asymmetric (config edit + SIGHUP, as the runbook says): every dashboard
#     expression and recording rule returns finite data in both, the rules evaluate without error,
#     and no alert but the one the run provokes goes pending or firing.
# About a minute once the binary is built.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-prometheus.sh
promtool check rules docs/alerts/keyshift.rules.yml
promtool test rules docs/alerts/tests/keyshift.rules.test.yml
cargo build -q -j2 -p keyshift
python3 scripts/observability_e2e.py "${CARGO_TARGET_DIR:-target}/debug/keyshift"
