# keyshift: `make run` to try it, `make test` to check everything.
CARGO ?= cargo
JOBS ?= 2
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
SOAK_SECONDS ?= 60

.PHONY: run test lint bench loadtest soak doc build test-observability test-proxies test-deploy fuzz deny

## run: start issuer and verifier on loopback with a generated config in ./.keyshift/
run:
	$(CARGO) run -j$(JOBS) -q -p keyshift -- dev

## build: debug build of the workspace
build:
	$(CARGO) build -j$(JOBS) --workspace

## test: every test of the workspace (unit, service, end-to-end with the real binary),
##       the Python and Node example verifiers against the real issuer through the four
##       phases (PyJWT and jose installed under target/), then a --quick load test
##       through the four phases with a legacy issuer's tokens, through the gateway too, and
##       the token endpoint per hash kind (checks its own report), and a --quick soak (10 s of load)
test:
	$(CARGO) test -j$(JOBS) --workspace
	$(CARGO) build -j$(JOBS) -p keyshift -p keyshift-loadtest
	bash examples/verifiers/run-tests.sh $(TARGET_DIR)/debug/keyshift $(TARGET_DIR)/examples-verifiers
	$(TARGET_DIR)/debug/keyshift-loadtest --quick --legacy-issuer --through-gateway --keyshift $(TARGET_DIR)/debug/keyshift --out $(TARGET_DIR)/loadtest-smoke
	$(TARGET_DIR)/debug/keyshift-loadtest --soak --quick --keyshift $(TARGET_DIR)/debug/keyshift --out $(TARGET_DIR)/loadtest-smoke

## lint: formatting and clippy, as CI runs them
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy -j$(JOBS) --workspace --all-targets -- -D warnings

## bench: criterion benches of the hot paths
bench:
	$(CARGO) bench -j$(JOBS) -p keyshift-benches

## loadtest: release build, issuer + verifier on loopback, goose across the migration phases
loadtest:
	$(CARGO) build -j$(JOBS) --release -p keyshift -p keyshift-loadtest
	$(TARGET_DIR)/release/keyshift-loadtest --keyshift $(TARGET_DIR)/release/keyshift --out loadtest/reports $(ARGS)

## soak: release build, issuer + verifier under mixed traffic and faults for SOAK_SECONDS
##       (default 60) of load; asserts no failure, no leak (docs/loadtest.md, "Soak")
soak:
	$(CARGO) build -j$(JOBS) --release -p keyshift -p keyshift-loadtest
	$(TARGET_DIR)/release/keyshift-loadtest --soak --seconds $(SOAK_SECONDS) --keyshift $(TARGET_DIR)/release/keyshift --out loadtest/reports $(ARGS)

## doc: API docs of the workspace
doc:
	$(CARGO) doc -j$(JOBS) --workspace --no-deps

## test-observability: promtool rule checks and unit tests, dashboard PromQL, and a real
##                     Prometheus scraping real services (installs Debian's prometheus if missing)
test-observability:
	bash scripts/check-observability.sh

## test-proxies: keyshift behind the real nginx, Caddy and HAProxy (Debian's packages, installed
##               if missing) with the configs of deploy/ byte for byte, every forward-auth outcome
##               checked; the issuer's metadata through authlib's validators (venv under target/)
test-proxies:
	bash scripts/proxy-tests.sh

## test-deploy: deploy/systemd through systemd-analyze, deploy/kubernetes rendered by kustomize,
##              validated against the Kubernetes schemas and its pods run locally with their
##              probes asked, deploy/Dockerfile's final stage built and run by buildah/podman
##              (Debian's packages and a venv under target/ installed if missing; SKIP lines
##              say what cannot run here)
test-deploy:
	$(CARGO) build -j$(JOBS) -p keyshift
	bash scripts/deploy-tests.sh $(TARGET_DIR)/debug/keyshift

## fuzz: every cargo-fuzz target for FUZZ_SECONDS (default 60) on the nightly toolchain
##       (skips with a line where there is none); make test replays the corpus on stable
fuzz:
	bash scripts/fuzz.sh

## deny: the dependency policy of deny.toml (licenses, bans, sources; advisories when reachable)
deny:
	bash scripts/deny.sh
