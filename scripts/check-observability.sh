#!/usr/bin/env bash
# `make test-observability`: the alert rules and the dashboard, checked for real.
#  1. promtool check rules + promtool test rules (every alert fires and stays silent as it should);
#  2. every PromQL expression of the dashboard parsed by promtool;
#  3. a real Prometheus on loopback scraping a real issuer and verifier under a little traffic,
#     asked for every dashboard expression and recording rule: each must return data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-prometheus.sh
promtool check rules docs/alerts/keyshift.rules.yml
promtool test rules docs/alerts/tests/keyshift.rules.test.yml
cargo build -q -j2 -p keyshift
python3 scripts/observability_e2e.py "${CARGO_TARGET_DIR:-target}/debug/keyshift"
