"""The dashboard and the alert rules against a real Prometheus scraping real keyshift services.

Usage: observability_e2e.py PATH/TO/keyshift

1. Every PromQL expression of the dashboard (panels inside collapsed rows too), its fleet variables
   ($job, $instance, $environment) set to All, is parsed by promtool; no panel or target names a
   datasource other than the `datasource` variable.
2. An issuer and a verifier start on loopback in phase `transition`, scraped every second by a
   Prometheus that also evaluates docs/alerts/keyshift.rules.yml every second. Traffic: RS256
   tokens from the token endpoint, HS256 tokens minted with the shared secret, a bad signature, a
   request without a token, a failed client authentication.
3. Every dashboard expression and every recording rule must return data, and only finite numbers
   (a 0/0 ratio is NaN: the traffic makes every ratio defined).
4. Then the runbook's phase 2 -> 3: HS256 traffic stops, the verifier must report itself ready
   (GET /migration and keyshift_ready_for_asymmetric), the config is edited (phase asymmetric,
   secret removed) and the verifier, then the issuer, get SIGHUP. RS256 traffic goes on, with a few
   HS256 stragglers that must now be rejected. Every dashboard expression must still return finite
   data.
5. Alerts: every rule evaluates without error; over the whole run no alert was pending or firing
   except KeyshiftRejectionsAfterChange, which the stragglers after the switch must make pending
   (proof that the rules run against live data). In particular KeyshiftHs256AcceptedInAsymmetric,
   which must never happen, stays silent across the switch.

Everything listens on 127.0.0.1; every wait is bounded (about a minute in all).
"""
import hashlib
import json
import math
import os
import re
import shutil
import signal
import socket
import http.server as http_server
import subprocess
import threading
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYSHIFT = os.path.abspath(sys.argv[1])
DASHBOARD = os.path.join(ROOT, "docs/dashboards/keyshift-migration.json")
RULES = os.path.join(ROOT, "docs/alerts/keyshift.rules.yml")
# Recording rules that need more history than a test run has (an offset of 30 minutes).
NEEDS_HISTORY = {"keyshift:signed_token_rejection_ratio:rate1h_offset30m"}
# The one alert the run provokes on purpose (HS256 stragglers after the switch); any other
# alert pending or firing fails the run.
EXPECTED_ALERT = "KeyshiftRejectionsAfterChange"
# What the dashboard's fleet variables ($job, $instance, $environment) are set to: All.
ALL = ".*"
# What Grafana's $__rate_interval is for a 1 s scrape interval and a short time range (4 x the
# scrape interval, rounded up): rates over the last phase only, a few seconds after a switch.
RATE_INTERVAL = "15s"
procs = []
T0 = time.time()


def log(msg):
    print(f"[{time.time() - T0:5.1f}s] {msg}", flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(args, log_path):
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(log_path, "w"), text=True)
    procs.append(p)
    deadline = time.time() + 30
    while time.time() < deadline:
        line = p.stdout.readline()
        m = re.search(r"listening on http://(\S+)", line or "")
        if m:
            return p, m.group(1)
        if p.poll() is not None:
            break
    sys.exit(f"{args[1]} did not start; see {log_path}")


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def eventually(what, check, limit):
    deadline = time.time() + limit
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.5)
    sys.exit(f"timed out after {limit}s waiting for {what}")


# === the dashboard ===


def walk(panels):
    """Every panel, including those nested in rows (a collapsed row holds its panels)."""
    for p in panels:
        yield p
        yield from walk(p.get("panels", []))


def datasources(node):
    """Every `datasource` object anywhere in the JSON."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "datasource" and isinstance(v, dict):
                yield v
            else:
                yield from datasources(v)
    elif isinstance(node, list):
        for v in node:
            yield from datasources(v)


def dashboard_exprs():
    d = json.load(open(DASHBOARD))
    assert d["schemaVersion"] == 41, f"schemaVersion {d['schemaVersion']}, expected 41 (Grafana 12 classic)"
    assert isinstance(d.get("refresh"), str), "refresh must be a string (schema 40)"
    assert "time_options" not in d.get("timepicker", {}), "timepicker.time_options was removed in schema 41"
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables.get("datasource", {}).get("type") == "datasource", "no `datasource` variable"
    for ds in datasources(d):
        if ds.get("type") == "prometheus":
            assert ds.get("uid") == "${datasource}", f"hard-coded datasource {ds}"
    out = []
    for p in walk(d["panels"]):
        if p.get("type") != "row":
            assert p.get("datasource", {}).get("uid") == "${datasource}", f"panel {p['title']}: no datasource variable"
        for t in p.get("targets", []):
            expr = t["expr"].replace("$__rate_interval", RATE_INTERVAL)
            for var in ("$job", "$instance", "$environment"):
                expr = expr.replace(var, ALL)
            out.append((p["title"], expr))
    nested = sum(len(p.get("panels", [])) for p in d["panels"] if p.get("type") == "row")
    return out, nested


def check_syntax(work):
    exprs, nested = dashboard_exprs()
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:expr{i}", "expr": e} for i, (_, e) in enumerate(exprs)]}]}
    path = os.path.join(work, "dashboard-exprs.rules.json")
    json.dump(rules, open(path, "w"))
    subprocess.run(["promtool", "check", "rules", path], check=True, stdout=subprocess.DEVNULL)
    log(f"dashboard: {len(exprs)} expressions parse ({nested} panels inside rows)")


def rule_names(kind):
    return re.findall(rf"^\s*- {kind}: (\S+)", open(RULES).read(), re.M)


# === Prometheus ===


class Prom:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def api(self, path, **params):
        s, b = http("GET", f"{self.base}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        if s != 200:
            return None
        return json.loads(b)["data"]

    def query(self, expr):
        data = self.api("query", query=expr)
        return None if data is None else data["result"]

    def ready(self):
        try:
            return http("GET", f"{self.base}/-/ready")[0] == 200
        except OSError:
            return False


class Upstream(http_server.BaseHTTPRequestHandler):
    """The gateway's upstream: 200 to every GET, nothing logged."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args):
        pass


def finite_data(result):
    """(ok, why): at least one series, every value a finite number."""
    if not result:
        return False, "no data"
    bad = [r for r in result if not math.isfinite(float(r["value"][1]))]
    if bad:
        return False, f"non-finite values: {[(r['metric'], r['value'][1]) for r in bad]}"
    return True, f"{len(result)} series"


def latencies(prom):
    """The dashboard's p50/p99 per algorithm: with the 250 ns .. 5 s buckets each is a real
    duration inside the bucket range, and p50 <= p99."""
    out = {}
    for q in ("0.5", "0.99"):
        expr = f"histogram_quantile({q}, sum by (alg, le) (rate(keyshift_verify_duration_seconds_bucket[{RATE_INTERVAL}]))) >= 0"
        for r in prom.query(expr) or []:
            v = float(r["value"][1])
            assert 0 < v <= 5, f"p{q} of {r['metric']['alg']} is {v}"
            out.setdefault(r["metric"]["alg"], []).append(v)
    for alg, (p50, p99) in out.items():
        assert p50 <= p99, (alg, p50, p99)
    return ", ".join(f"{alg} p50 {p50 * 1e6:.1f} µs p99 {p99 * 1e6:.1f} µs" for alg, (p50, p99) in sorted(out.items()))


def check_all(prom, checks, limit, traffic):
    """Runs traffic until every expression returns finite data (or the time limit)."""
    pending = dict(checks)
    why = {}
    deadline = time.time() + limit
    while pending and time.time() < deadline:
        traffic()
        for expr, title in list(pending.items()):
            result = prom.query(expr)
            if result is None:
                continue
            ok, why[expr] = finite_data(result)
            if ok:
                del pending[expr]
    if pending:
        for expr, title in pending.items():
            print(f"  FAILED {title} :: {expr}: {why.get(expr, 'query failed')}")
        sys.exit(f"{len(pending)} expressions without finite data")
    return len(checks)


def main():
    work = tempfile.mkdtemp(prefix="keyshift-obs-")
    try:
        check_syntax(work)
        exprs, _ = dashboard_exprs()
        secret = os.path.join(work, "hs256.secret")
        open(secret, "w").write("observability-shared-secret-0123456789\n")
        secret_hash = "sha256:" + hashlib.sha256(b"obs-secret").hexdigest()
        iport = free_port()
        gport = free_port()
        # The gateway's upstream: answers 200 to anything.
        upstream = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
        uport = upstream.server_address[1]
        threading.Thread(target=upstream.serve_forever, daemon=True).start()

        # Short token lifetimes so that readiness for phase asymmetric comes within seconds.
        def config(phase, with_secret, key_dir="keys"):
            secret_line = 'hs256_secret_file = "hs256.secret"\n' if with_secret else ""
            return f'''phase = "{phase}"
[issuer]
listen = "127.0.0.1:{iport}"
key_dir = "{key_dir}"
issuer = "http://obs"
audience = "https://api.obs"
token_ttl = "15s"
failed_auth_limit = 100000
{secret_line}[[issuer.clients]]
id = "obs-client"
secret_hash = "{secret_hash}"
scopes = ["read"]
[verifier]
listen = "127.0.0.1:0"
issuer = "http://obs"
audience = "https://api.obs"
jwks_url = "http://127.0.0.1:{iport}/.well-known/jwks.json"
max_token_lifetime = "15s"
leeway = "1s"
{secret_line}
[gateway]
listen = "127.0.0.1:{gport}"
key_dir = "{key_dir}"
issuer = "http://obs"

[[gateway.routes]]
name = "obs"
upstream = "http://127.0.0.1:{uport}"
sign = true
audience = "https://upstream.obs"
'''

        cfg = os.path.join(work, "keyshift.toml")
        dual = os.path.join(work, "dual.toml")  # for `keyshift token`: HS256 tokens like phase dual's issuer
        # After the switch, stragglers come from a minter the issuer does not know of (its record of
        # HS256 tokens is elsewhere): the issuer's /migration rightly stays done with HS256.
        straggler = os.path.join(work, "straggler.toml")
        open(cfg, "w").write(config("transition", True))
        open(dual, "w").write(config("dual", True))
        open(straggler, "w").write(config("dual", True, key_dir="elsewhere"))
        # A first start in transition needs its key directory made deliberately.
        subprocess.run([KEYSHIFT, "keys", "generate", "--config", cfg], check=True, capture_output=True)
        issuer_p, issuer = start([KEYSHIFT, "issuer", "--config", cfg], os.path.join(work, "issuer.log"))
        verifier_p, verifier = start([KEYSHIFT, "verifier", "--config", cfg], os.path.join(work, "verifier.log"))
        # The gateway verifies and signs the RS256 traffic it gets throughout; the switch to
        # asymmetric reaches it by SIGHUP, as the verifier's does.
        gateway_p, gateway = start([KEYSHIFT, "gateway", "--config", cfg], os.path.join(work, "gateway.log"))

        pport = free_port()
        prom_cfg = os.path.join(work, "prometheus.yml")
        open(prom_cfg, "w").write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{RULES}"]
scrape_configs:
  - job_name: keyshift-issuer
    static_configs: [{{targets: ["{issuer}"]}}]
  - job_name: keyshift-verifier
    static_configs: [{{targets: ["{verifier}"]}}]
  - job_name: keyshift-gateway
    static_configs: [{{targets: ["{gateway}"]}}]
""")
        prom_p = subprocess.Popen(["prometheus", f"--config.file={prom_cfg}", f"--web.listen-address=127.0.0.1:{pport}",
                                   f"--storage.tsdb.path={os.path.join(work, 'data')}"],
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "prometheus.log"), "w"))
        procs.append(prom_p)
        prom = Prom(pport)
        eventually("Prometheus ready", prom.ready, 30)
        log(f"issuer {issuer}, verifier {verifier}, gateway {gateway}, Prometheus 127.0.0.1:{pport}")

        form = {"Content-Type": "application/x-www-form-urlencoded"}

        def mint_rs():
            body = b"grant_type=client_credentials&client_id=obs-client&client_secret=obs-secret"
            s, b = http("POST", f"http://{issuer}/oauth/token", body, form)
            assert s == 200, (s, b)
            return json.loads(b)["access_token"]

        def mint_hs(n):
            minter = straggler if state["stragglers"] else dual
            out = subprocess.run([KEYSHIFT, "token", "--config", minter, "--client", "obs-client", "--count", str(n)],
                                 check=True, capture_output=True, text=True).stdout.split()
            assert len(out) == n
            return out

        def verify(token):
            headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
            return http("GET", f"http://{verifier}/verify", headers=headers)[0]

        def migration():
            return json.loads(http("GET", f"http://{verifier}/migration")[1])

        # Tokens live 15 s: fresh ones every 5 s. Per round: 60 good verifications (a few
        # distinct tokens, so the token cache both misses and hits), one bad signature (1.6 %
        # of signed tokens: under the rejection alerts' thresholds), one request without a
        # token, one failed client authentication at the issuer.
        state = {"minted": 0.0, "rs": [], "hs": [], "hs_traffic": True, "stragglers": 0}

        def traffic():
            if time.time() - state["minted"] > 5:
                state["rs"] = [mint_rs() for _ in range(5)]
                state["hs"] = mint_hs(5) if state["hs_traffic"] or state["stragglers"] else []
                state["minted"] = time.time()
            rs = state["rs"]
            good = rs * 8 + (state["hs"] * 4 if state["hs_traffic"] else rs * 4)
            for t in good:
                assert verify(t) == 200, "a good token was rejected"
            for t in state["hs"][: state["stragglers"]]:
                assert verify(t) == 401, "an HS256 token was accepted in phase asymmetric"
            assert verify(rs[0][:-4] + "AAAA") == 401
            assert verify(None) == 401
            # Through the gateway: RS256 tokens verified, a signed token for the upstream, mostly
            # from its cache (one signature per token and half its 60 s lifetime).
            for t in rs * 2:
                s, _ = http("GET", f"http://{gateway}/orders", headers={"Authorization": f"Bearer {t}"})
                assert s == 200, f"the gateway answered {s}"
            http("POST", f"http://{issuer}/oauth/token", b"grant_type=client_credentials&client_id=obs-client&client_secret=nope", form)
            time.sleep(0.5)

        checks = {expr: title for title, expr in exprs}
        recording = [r for r in rule_names("record") if r not in NEEDS_HISTORY]
        checks.update({r: "recording rule" for r in recording})

        # --- phase transition: every expression returns finite data
        n = check_all(prom, checks, 60, traffic)
        log(f"phase transition: {n} expressions ({len(recording)} recording rules) return finite data")
        log(f"verify latency (debug build): {latencies(prom)}")

        # --- runbook 2 -> 3: stop HS256, wait until the verifier says it is ready
        state["hs_traffic"] = False
        eventually("ready_for_asymmetric in GET /migration", lambda: (traffic(), migration()["ready_for_asymmetric"])[1], 40)
        m = migration()
        assert m["hs256_valid_until_unix"] and m["hs256_valid_until_unix"] <= time.time(), m
        eventually("keyshift_ready_for_asymmetric == 1 in Prometheus",
                   lambda: (traffic(), (prom.query("min(keyshift_ready_for_asymmetric)") or [{"value": [0, "0"]}])[0]["value"][1] == "1")[1], 15)
        log(f"verifier ready for asymmetric: {m['reason']}")

        open(cfg, "w").write(config("asymmetric", False))
        verifier_p.send_signal(signal.SIGHUP)
        eventually("the verifier in phase asymmetric", lambda: migration()["phase"] == "asymmetric", 15)
        gateway_p.send_signal(signal.SIGHUP)
        issuer_p.send_signal(signal.SIGHUP)
        eventually("the issuer's secret gone",
                   lambda: (prom.query('max(keyshift_hs256_secret_configured)') or [{"value": [0, "1"]}])[0]["value"][1] == "0", 15)
        log("switched to phase asymmetric (verifier, then issuer; secret removed)")

        # --- phase asymmetric: RS256 goes on; two HS256 stragglers per round get alg_disabled.
        # The dashboard's rate windows then hold phase asymmetric only.
        state["stragglers"] = 2
        state["minted"] = 0.0
        switched = time.time()
        while time.time() - switched < 20:
            traffic()
        n = check_all(prom, checks, 40, traffic)
        log(f"phase asymmetric: {n} expressions return finite data")
        pending_expected = f'ALERTS{{alertname="{EXPECTED_ALERT}",alertstate="pending"}}'
        eventually(f"{EXPECTED_ALERT} pending after the stragglers", lambda: (traffic(), bool(prom.query(pending_expected)))[1], 40)
        assert migration()["counts"]["HS256"]["rejected"] > 0

        # --- alerts over the whole run
        groups = prom.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        broken = [(r["name"], r.get("lastError")) for r in rules if r.get("health") != "ok"]
        assert not broken, f"rules failing on live data: {broken}"
        assert {r["name"] for r in rules if r["type"] == "alerting"} == set(rule_names("alert")), "not every alert loaded"
        span = int(time.time() - T0) + 60
        seen = prom.query(f'max by (alertname, alertstate) (max_over_time(ALERTS{{alertname=~"Keyshift.*"}}[{span}s]))') or []
        seen = sorted({(r["metric"]["alertname"], r["metric"]["alertstate"]) for r in seen})
        log(f"{len(rules)} rules evaluated without error; alerts seen in the run: "
            f"{', '.join(f'{a} ({s})' for a, s in seen) or 'none'}")
        unexpected = [(a, s) for a, s in seen if a != EXPECTED_ALERT]
        if unexpected:
            sys.exit(f"alerts that must stay silent in this run went pending or firing: {unexpected}")
        silent = sorted(set(rule_names("alert")) - {EXPECTED_ALERT})
        log(f"silent throughout: {', '.join(silent)}")
        print(f"observability: {len(checks)} expressions with finite data in two phases, "
              f"{len(silent)} alerts silent, {EXPECTED_ALERT} pending as provoked")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
