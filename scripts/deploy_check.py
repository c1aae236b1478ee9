"""Checks of deploy/ for scripts/deploy-tests.sh (make test-deploy).

    deploy_check.py static RENDERED.yaml
        The rendered Kubernetes objects agree with the keyshift configs in
        their ConfigMaps: containerPorts are the listeners, probes ask
        /healthz and /readyz on a listener in the right scheme, Prometheus
        scrapes the admin listener, every file a config names is under a
        mount, key_dir on a writable volume, no subPath, the restricted
        security context, and every ConfigMap or Secret mounted is either
        rendered or one of EXTERNAL (created by hand, docs/deployment.md).

    deploy_check.py run RENDERED.yaml BIN TLSDIR WORKDIR
        Inside a mount and network namespace of scripts/deploy-tests.sh
        (/etc and /var/lib overlaid, so mount points can be made): lays out
        each volume under WORKDIR (ConfigMaps byte for byte, stand-in Secrets
        with the test CA's files, an empty key volume) and runs each command
        in a mount namespace of its own with the pod's mounts, as user 65532,
        with the container's env only: the Job's command, `keyshift config
        check` of each pod's config, then each workload's exact args; asks its
        probes and its Prometheus port as the kubelet and Prometheus would.

Each check prints one line; the exit status is 1 if any failed.
"""

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request

import yaml

# Objects the manifests mount but do not render: created by hand before
# `kubectl apply -k` (docs/deployment.md, "Kubernetes"), with their keys.
EXTERNAL = {
    ("Secret", "keyshift-hs256"): ["hs256.secret"],
    ("Secret", "keyshift-issuer-tls"): ["tls.crt", "tls.key", "ca.crt"],
    ("ConfigMap", "keyshift-issuer-ca"): ["ca.crt"],
}
WORKLOADS = ("Deployment", "StatefulSet", "Job")
# Config keys naming a file (or folder) each service reads.
FILE_KEYS = ("hs256_secret_file", "tls_cert_file", "tls_key_file", "jwks_ca_file",
             "jwks_client_cert_file", "jwks_client_key_file", "key_dir")
IMAGE_USER = 65532  # USER of deploy/Dockerfile

passed = 0
failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what}")
    return ok


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


class Workload:
    """One keyshift container of a Deployment, StatefulSet or Job."""

    def __init__(self, obj, objects):
        self.kind = obj["kind"]
        self.name = obj["metadata"]["name"]
        self.tmpl = obj["spec"]["template"]
        self.pod = self.tmpl["spec"]
        self.c = self.pod["containers"][0]
        self.args = self.c.get("args", [])
        self.service = "issuer" if self.args[0] == "keys" else self.args[0]
        self.config_path = self.args[self.args.index("--config") + 1]
        self.volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        self.mounts = self.c.get("volumeMounts", [])
        self.ports = {p["name"]: p["containerPort"] for p in self.c.get("ports", [])}
        self.objects = objects
        self.toml_text = self.file_text(self.config_path)
        self.config = tomllib.loads(self.toml_text) if self.toml_text is not None else {}
        self.section = self.config.get(self.service, {})

    def __str__(self):
        return f"{self.kind}/{self.name}"

    def mount_of(self, path):
        """The (mount, volume) a path lies under, or (None, None)."""
        best = None
        for m in self.mounts:
            mp = m["mountPath"].rstrip("/")
            if path == mp or path.startswith(mp + "/"):
                if best is None or len(mp) > len(best["mountPath"]):
                    best = m
        return (best, self.volumes.get(best["name"])) if best else (None, None)

    def source(self, volume):
        """(kind, name) of a ConfigMap or Secret volume, else None."""
        if "configMap" in volume:
            return ("ConfigMap", volume["configMap"]["name"])
        if "secret" in volume:
            return ("Secret", volume["secret"]["secretName"])
        return None

    def file_text(self, path):
        """A file of a rendered ConfigMap as the container sees it."""
        m, v = self.mount_of(path)
        if not v or "configMap" not in v:
            return None
        key = path[len(m["mountPath"].rstrip("/")) + 1:]
        for o in self.objects:
            if o["kind"] == "ConfigMap" and o["metadata"]["name"] == v["configMap"]["name"]:
                return o.get("data", {}).get(key)
        return None

    def listeners(self):
        """{port: (key, tls)} of the service's listeners."""
        out = {}
        tls = "tls_cert_file" in self.section
        if "listen" in self.section:
            out[port_of(self.section["listen"])] = ("listen", tls)
        if "admin_listen" in self.section:
            out[port_of(self.section["admin_listen"])] = ("admin_listen", False)
        return out

    def probe_port(self, probe):
        p = probe["httpGet"]["port"]
        return self.ports.get(p) if isinstance(p, str) else p

    def metrics_port(self):
        s = self.section
        return port_of(s.get("admin_listen") or s["listen"])


def static(rendered):
    objects = load(rendered)
    workloads = [Workload(o, objects) for o in objects if o["kind"] in WORKLOADS]
    check(len(workloads) > 0, f"{rendered}: {len(workloads)} keyshift workloads")
    rendered_names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for w in workloads:
        check(w.toml_text is not None,
              f"{w}: --config {w.config_path} is a key of a rendered ConfigMap it mounts")
        check(w.service in w.config, f"{w}: its config has a [{w.service}] section")
        # Volumes: rendered or documented as created by hand, with the keys used.
        for v in w.volumes.values():
            src = w.source(v)
            if src:
                check(src in rendered_names or src in EXTERNAL,
                      f"{w}: volume {v['name']} ({src[0]} {src[1]}) is rendered or in docs/deployment.md's list")
        check(all("subPath" not in m for m in w.mounts),
              f"{w}: no subPath mount (an update would never reach the pod)")
        # Every file the config names lies under a mount.
        for key in FILE_KEYS:
            if key not in w.section:
                continue
            path = w.section[key]
            m, v = w.mount_of(path)
            check(m is not None, f"{w}: {w.service}.{key} = {path} is under a volume mount")
            if not m:
                continue
            src = w.source(v)
            if key == "key_dir":
                check("persistentVolumeClaim" in v and not m.get("readOnly", False),
                      f"{w}: key_dir {path} is on a writable PersistentVolumeClaim")
            elif src in EXTERNAL:
                name = path[len(m["mountPath"].rstrip("/")) + 1:]
                check(name in EXTERNAL[src], f"{w}: {path} is key {name} of {src[0]} {src[1]}")
        for e in w.c.get("env", []):
            if e["name"] == "SSL_CERT_FILE":
                check(w.mount_of(e["value"])[0] is not None, f"{w}: SSL_CERT_FILE {e['value']} is under a mount")
        # Security context: the restricted Pod Security Standard and the image's user.
        psc, csc = w.pod.get("securityContext", {}), w.c.get("securityContext", {})
        check(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == IMAGE_USER
              and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
              f"{w}: pod runs as non-root {IMAGE_USER} with the RuntimeDefault seccomp profile")
        check(csc.get("readOnlyRootFilesystem") is True and csc.get("allowPrivilegeEscalation") is False
              and csc.get("capabilities", {}).get("drop") == ["ALL"],
              f"{w}: read-only root, no privilege escalation, all capabilities dropped")
        check(w.pod.get("automountServiceAccountToken") is False, f"{w}: no service account token")
        res = w.c.get("resources", {})
        check("cpu" in res.get("requests", {}) and "memory" in res.get("limits", {}),
              f"{w}: cpu request and memory limit")
        if w.kind == "Job":
            continue
        # Long-running services: ports, probes, metrics, reload.
        listeners = w.listeners()
        check(sorted(w.ports.values()) == sorted(listeners),
              f"{w}: containerPorts {sorted(w.ports.values())} are the listeners {sorted(listeners)}")
        check(w.section.get("watch_config") is True, f"{w}: watch_config = true (ConfigMap edits reload)")
        check(w.section.get("log_format") == "json", f"{w}: log_format = \"json\"")
        for kind, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            probe = w.c.get(kind)
            if not check(probe is not None and probe["httpGet"]["path"] == path, f"{w}: {kind} asks {path}"):
                continue
            port = w.probe_port(probe)
            key, tls = listeners.get(port, (None, False))
            scheme = probe["httpGet"].get("scheme", "HTTP")
            check(key is not None and (scheme == "HTTPS") == tls,
                  f"{w}: {kind} port {port} is {w.service}.{key} in {scheme}")
        ann = w.tmpl["metadata"].get("annotations", {})
        check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/path") == "/metrics"
              and ann.get("prometheus.io/port") == str(w.metrics_port()),
              f"{w}: Prometheus scrapes /metrics on {w.metrics_port()} (admin_listen)")
        # Services selecting the pods reach a named port of them.
        labels = w.tmpl["metadata"]["labels"]
        for o in objects:
            if o["kind"] != "Service":
                continue
            sel = o["spec"].get("selector", {})
            if not sel or any(labels.get(k) != v for k, v in sel.items()):
                continue
            for p in o["spec"]["ports"]:
                t = p.get("targetPort", p["port"])
                check((t in w.ports) if isinstance(t, str) else (t in w.ports.values()),
                      f"Service/{o['metadata']['name']}: targetPort {t} is a port of {w}")
    return objects, workloads


# === run: the pods' files, commands and probes inside the namespace ===

def volume_dir(root, w, volume):
    """Where a volume's files are laid out: one folder per ConfigMap, Secret or
    claim, so pods sharing one share it (the Job and the issuer: the keys)."""
    if "persistentVolumeClaim" in volume:
        return os.path.join(root, "pvc-" + volume["persistentVolumeClaim"]["claimName"])
    kind, name = w.source(volume)
    return os.path.join(root, f"{kind.lower()}-{name}")


def lay_out(root, w, tls):
    """Writes what each volume of `w` holds, as the kubelet would."""
    for m in w.mounts:
        v = w.volumes[m["name"]]
        d = volume_dir(root, w, v)
        os.makedirs(m["mountPath"], exist_ok=True)  # the mount point, in the overlay
        if os.path.isdir(d):
            continue
        os.makedirs(d)
        if "persistentVolumeClaim" in v:
            os.chown(d, IMAGE_USER, IMAGE_USER)  # fsGroup
            continue
        src = w.source(v)
        if src in EXTERNAL:  # stand-ins: a fresh secret, the test CA's files
            mode = v.get("secret", v.get("configMap", {})).get("defaultMode", 0o644)
            for name in EXTERNAL[src]:
                path = os.path.join(d, name)
                if name.endswith(".secret"):
                    with open(path, "w") as f:
                        f.write(os.urandom(32).hex())
                else:
                    shutil.copy(os.path.join(tls, name), path)
                os.chown(path, 0, IMAGE_USER)  # fsGroup
                os.chmod(path, mode)
        else:
            for o in w.objects:
                if (o["kind"], o["metadata"]["name"]) == src:
                    for key, text in o.get("data", {}).items():
                        with open(os.path.join(d, key), "w") as f:
                            f.write(text)


def in_pod(root, w, binary, args):
    """The command line that runs `binary args` with the pod's mounts (a mount
    namespace of its own) as the pod's user, with only the container's env."""
    binds = " && ".join(
        f"mount --bind {'-o ro ' if m.get('readOnly') else ''}'{volume_dir(root, w, w.volumes[m['name']])}' '{m['mountPath']}'"
        for m in w.mounts)
    script = f"{binds} && exec setpriv --reuid={IMAGE_USER} --regid={IMAGE_USER} --groups={IMAGE_USER} \"$@\""
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", binary] + list(args)


def env_of(w):
    env = {"PATH": "/usr/bin:/bin"}
    env.update({e["name"]: e["value"] for e in w.c.get("env", [])})
    return env


def get(url, timeout=1.0):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # as the kubelet: HTTPS probes do not verify
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, ""
    except (OSError, urllib.error.URLError):
        return None, ""


def run(rendered, binary, tls, root):
    objects = load(rendered)
    workloads = [Workload(o, objects) for o in objects if o["kind"] in WORKLOADS]
    for w in workloads:
        lay_out(root, w, tls)
    # The Job first, as the docs order it; then each config as its pod reads it.
    for w in workloads:
        if w.kind == "Job":
            r = subprocess.run(in_pod(root, w, binary, w.args), env=env_of(w), capture_output=True, text=True)
            out = (r.stdout.strip().splitlines() or [""])[-1]
            check(r.returncode == 0, f"{w}: keyshift {' '.join(w.args)} -> {out}{r.stderr.strip()}")
    for w in workloads:
        if w.kind == "Job":
            continue
        r = subprocess.run(in_pod(root, w, binary, ["config", "check", w.config_path]), env=env_of(w),
                           capture_output=True, text=True)
        check(r.returncode == 0, f"{w}: keyshift config check {w.config_path} in the pod's mounts"
              + ("" if r.returncode == 0 else f": {r.stderr.strip()}"))
    procs = []
    try:
        for w in workloads:
            if w.kind == "Job":
                continue
            log = open(os.path.join(root, f"{w.name}.log"), "w")
            procs.append((w, subprocess.Popen(in_pod(root, w, binary, w.args), env=env_of(w),
                                              stdout=log, stderr=subprocess.STDOUT)))
        for w, p in procs:
            for kind in ("livenessProbe", "readinessProbe"):
                probe = w.c[kind]
                port = w.probe_port(probe)
                scheme = probe["httpGet"].get("scheme", "HTTP").lower()
                url = f"{scheme}://127.0.0.1:{port}{probe['httpGet']['path']}"
                status = None
                for _ in range(150):
                    if p.poll() is not None:
                        break
                    status, _body = get(url)
                    if status == 200:
                        break
                    time.sleep(0.1)
                check(status == 200, f"{w}: the kubelet's {kind} {url} answers 200"
                      + ("" if status == 200 else f" (got {status}; log: {tail(root, w)})"))
            port = w.metrics_port()
            status, body = get(f"http://127.0.0.1:{port}/metrics")
            check(status == 200 and "keyshift_build_info" in body,
                  f"{w}: Prometheus's GET http://127.0.0.1:{port}/metrics answers keyshift's metrics")
    finally:
        for _w, p in procs:
            p.send_signal(signal.SIGTERM)
        for _w, p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def tail(root, w):
    with open(os.path.join(root, f"{w.name}.log")) as f:
        lines = f.read().strip().splitlines()
    return lines[-1] if lines else "empty"


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "static" and len(sys.argv) == 3:
        static(sys.argv[2])
    elif cmd == "run" and len(sys.argv) == 6:
        run(*sys.argv[2:6])
    else:
        sys.exit(__doc__)
    print(json.dumps({"passed": passed, "failed": failed}))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
