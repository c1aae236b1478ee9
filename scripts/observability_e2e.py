"""Dashboard expressions against a real Prometheus scraping real keyshift services.

Usage: observability_e2e.py PATH/TO/keyshift
Everything listens on 127.0.0.1; every wait is bounded.
"""
import json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.parse, urllib.request, hashlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYSHIFT = os.path.abspath(sys.argv[1])
DASHBOARD = os.path.join(ROOT, "docs/dashboards/keyshift-migration.json")
RULES = os.path.join(ROOT, "docs/alerts/keyshift.rules.yml")
procs = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(args, log):
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True)
    procs.append(p)
    deadline = time.time() + 30
    while time.time() < deadline:
        line = p.stdout.readline()
        m = re.search(r"listening on http://(\S+)", line or "")
        if m:
            return m.group(1)
        if p.poll() is not None:
            break
    sys.exit(f"{args[1]} did not start; see {log}")


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def dashboard_exprs():
    d = json.load(open(DASHBOARD))
    for p in d["panels"]:
        for ds in [p.get("datasource")] + [t.get("datasource") for t in p.get("targets", [])]:
            assert ds is None or ds.get("uid") == "${datasource}", f"hard-coded datasource in {p['title']}"
        for t in p.get("targets", []):
            yield p["title"], t["expr"].replace("$__rate_interval", "1m")


def check_syntax(work):
    exprs = list(dashboard_exprs())
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:expr{i}", "expr": e} for i, (_, e) in enumerate(exprs)]}]}
    path = os.path.join(work, "dashboard-exprs.rules.json")
    json.dump(rules, open(path, "w"))
    subprocess.run(["promtool", "check", "rules", path], check=True)
    print(f"dashboard: {len(exprs)} expressions parse")


def main():
    work = tempfile.mkdtemp(prefix="keyshift-obs-")
    try:
        check_syntax(work)
        open(os.path.join(work, "hs256.secret"), "w").write("observability-shared-secret-0123456789\n")
        secret_hash = "sha256:" + hashlib.sha256(b"obs-secret").hexdigest()
        iport = free_port()
        base = f'''phase = "{{phase}}"
[issuer]
listen = "127.0.0.1:{iport}"
issuer = "http://obs"
audience = "https://api.obs"
hs256_secret_file = "hs256.secret"
[[issuer.clients]]
id = "obs-client"
secret_hash = "{secret_hash}"
scopes = ["read"]
[verifier]
listen = "127.0.0.1:0"
issuer = "http://obs"
audience = "https://api.obs"
jwks_url = "http://127.0.0.1:{iport}/.well-known/jwks.json"
hs256_secret_file = "hs256.secret"
'''
        cfg = os.path.join(work, "keyshift.toml")
        dual = os.path.join(work, "dual.toml")
        open(cfg, "w").write(base.format(phase="transition"))
        open(dual, "w").write(base.format(phase="dual"))
        issuer = start([KEYSHIFT, "issuer", "--config", cfg], os.path.join(work, "issuer.log"))
        verifier = start([KEYSHIFT, "verifier", "--config", cfg], os.path.join(work, "verifier.log"))

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
""")
        prom = subprocess.Popen(["prometheus", f"--config.file={prom_cfg}", f"--web.listen-address=127.0.0.1:{pport}",
                                 f"--storage.tsdb.path={os.path.join(work, 'data')}"],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "prometheus.log"), "w"))
        procs.append(prom)

        def mint_rs():
            body = b"grant_type=client_credentials&client_id=obs-client&client_secret=obs-secret"
            s, b = http("POST", f"http://{issuer}/oauth/token", body, {"Content-Type": "application/x-www-form-urlencoded"})
            assert s == 200, (s, b)
            return json.loads(b)["access_token"]

        hs = subprocess.run([KEYSHIFT, "token", "--config", dual, "--client", "obs-client", "--count", "5"],
                            check=True, capture_output=True, text=True).stdout.split()
        rs = [mint_rs() for _ in range(5)]
        bad = rs[0][:-4] + "AAAA"
        http("POST", f"http://{issuer}/oauth/token", b"grant_type=client_credentials&client_id=obs-client&client_secret=nope",
             {"Content-Type": "application/x-www-form-urlencoded"})

        def traffic():
            for t in rs + hs + rs:
                assert http("GET", f"http://{verifier}/verify", headers={"Authorization": f"Bearer {t}"})[0] == 200
            assert http("GET", f"http://{verifier}/verify", headers={"Authorization": f"Bearer {bad}"})[0] == 401
            mint_rs()

        # A little traffic for a while, so rates over 1m have several samples.
        pending = {expr: title for title, expr in dashboard_exprs()}
        pending.update({r: "recording rule" for r in ["keyshift:verify:rate5m", "keyshift:hs256_accepted_share:rate5m",
                                       "keyshift:key_cache_hit_ratio:rate5m", "keyshift:token_cache_hit_ratio:rate5m",
                                       "keyshift:signed_token_rejection_ratio:rate5m"]})
        deadline = time.time() + 90
        results = {}
        while pending and time.time() < deadline:
            traffic()
            time.sleep(1)
            for expr, title in list(pending.items()):
                q = urllib.parse.urlencode({"query": expr})
                try:
                    s, b = http("GET", f"http://127.0.0.1:{pport}/api/v1/query?{q}")
                except OSError:
                    break
                if s != 200:
                    continue
                data = json.loads(b)["data"]["result"]
                if data:
                    results[title + " :: " + expr] = len(data)
                    del pending[expr]
        for k, n in sorted(results.items()):
            print(f"  data ({n} series): {k}")
        s, b = http("GET", f"http://127.0.0.1:{pport}/api/v1/alerts")
        firing = sorted({a["labels"]["alertname"] for a in json.loads(b)["data"]["alerts"]}) if s == 200 else []
        print(f"alerts pending or firing in the live run: {firing or 'none'}")
        if pending:
            sys.exit(f"no data for: {sorted(pending)}")
        print(f"observability: {len(results)} passed, 0 failed")
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
