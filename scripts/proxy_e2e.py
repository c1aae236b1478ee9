#!/usr/bin/env python3
"""The pieces of scripts/proxy-tests.sh that speak HTTP: a tiny upstream
that answers every request with the headers it got, and the client that
checks, through one real proxy, every outcome of docs/forward-auth.md.

  proxy_e2e.py upstream PORT
  proxy_e2e.py check NAME PROXY_URL TOKEN SECRET_FILE MALFORMED_STATUS [DUPLICATE]

MALFORMED_STATUS is what a malformed request gets (400, or 401 where the
proxy cannot pass a 400 on: nginx). DUPLICATE=proxy-400 says the proxy
itself refuses two Authorization headers with a 400 of its own (nginx does).

Prints one line per check ("ok ..." or "FAIL ...") and exits 1 on a failure.
"""

import base64
import hashlib
import hmac
import http.client
import http.server
import json
import sys
import time
import urllib.parse

IDENTITY = ["x-auth-subject", "x-auth-client", "x-auth-scope", "x-auth-alg", "x-auth-kid"]


# === the upstream ===

class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Upstream", "echo")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def upstream(port):
    http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Echo).serve_forever()


# === tokens ===

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def resign(token, secret, **changes):
    """The issued HS256 token with `changes` to its claims, signed again."""
    header, payload, _ = token.split(".")
    claims = json.loads(unb64url(payload))
    claims.update(changes)
    body = header + "." + b64url(json.dumps(claims).encode())
    sig = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    return body + "." + b64url(sig)


def rs256_shaped(token):
    """An RS256 token (claims of `token`) whose keys the verifier cannot fetch."""
    header = b64url(json.dumps({"alg": "RS256", "typ": "at+jwt", "kid": "kid-of-a-dead-jwks"}).encode())
    payload = token.split(".")[1]
    return header + "." + payload + "." + b64url(b"\x01" * 256)


# === the checks ===

class Proxy:
    def __init__(self, url):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80

    def get(self, path, headers=()):
        """GET with raw headers (repeated names and non-ASCII bytes allowed)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        conn.putrequest("GET", path)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        return resp.status, resp.headers, body


class Checks:
    def __init__(self, name):
        self.name, self.passed, self.failed = name, 0, 0

    def expect(self, what, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {self.name}: {what}")
        else:
            self.failed += 1
            print(f"FAIL {self.name}: {what}: {detail}")


def challenges(headers):
    return headers.get_all("WWW-Authenticate") or []


def refused(c, what, resp, status, challenge_has, retry_after=False):
    code, headers, body = resp
    got = challenges(headers)
    detail = f"status {code}, WWW-Authenticate {got}, Retry-After {headers.get('Retry-After')}"
    c.expect(f"{what}: {status}", code == status, detail)
    c.expect(
        f"{what}: exactly one challenge with {challenge_has!r}",
        len(got) == 1 and challenge_has in got[0],
        detail,
    )
    c.expect(
        f"{what}: Retry-After {'present' if retry_after else 'absent'}",
        (headers.get("Retry-After", "").isdigit()) == retry_after,
        detail,
    )
    c.expect(f"{what}: the upstream was not reached", headers.get("X-Upstream") is None, detail)


def check(name, url, token, secret_file, malformed_status, duplicate="keyshift"):
    malformed_status = int(malformed_status)
    secret = open(secret_file, "rb").read().rstrip(b"\n")
    proxy, c = Proxy(url), Checks(name)
    bearer = ("Authorization", "Bearer " + token)
    kid = json.loads(unb64url(token.split(".")[0])).get("kid", "")

    code, headers, body = proxy.get("/orders/7", [bearer])
    seen = json.loads(body) if code == 200 else {}
    c.expect("accepted: 200 from the upstream", code == 200 and headers.get("X-Upstream") == "echo", f"{code} {body[:200]!r}")
    want = {"x-auth-subject": "svc-a", "x-auth-client": "svc-a", "x-auth-scope": "read write",
            "x-auth-alg": "HS256", "x-auth-kid": kid}
    c.expect("accepted: the upstream sees the five identity headers",
             {k: seen.get(k) for k in IDENTITY} == want, f"{ {k: seen.get(k) for k in IDENTITY} }")

    spoofed = [bearer] + [(h, "spoofed") for h in IDENTITY]
    code, _, body = proxy.get("/orders/7", spoofed)
    seen = json.loads(body) if code == 200 else {}
    c.expect("spoofed identity headers are replaced by keyshift's",
             code == 200 and {k: seen.get(k) for k in IDENTITY} == want, f"{code} {seen}")
    code, _, body = proxy.get("/orders/7", [(h, "spoofed") for h in IDENTITY])
    c.expect("spoofed identity headers without a token: 401", code == 401, f"{code}")

    refused(c, "no token", proxy.get("/orders/7"), 401, 'Bearer realm="keyshift"')
    refused(c, "Basic credentials", proxy.get("/orders/7", [("Authorization", "Basic dTpw")]),
            401, 'Bearer realm="keyshift"')
    refused(c, "bad token", proxy.get("/orders/7", [("Authorization", "Bearer " + token[:-4] + "AAAA")]),
            401, 'error="invalid_token"')
    now = int(time.time())
    expired = resign(token, secret, exp=now - 3600, iat=now - 4000, nbf=now - 4000)
    refused(c, "expired", proxy.get("/orders/7", [("Authorization", "Bearer " + expired)]),
            401, 'error_description="token expired"')
    refused(c, "insufficient scope", proxy.get("/admin/users", [bearer]),
            403, 'error="insufficient_scope", error_description="insufficient scope", scope="admin"')
    if duplicate == "proxy-400":
        code, headers, _ = proxy.get("/orders/7", [bearer, bearer])
        c.expect("malformed: two Authorization headers: the proxy's own 400, upstream not reached",
                 code == 400 and headers.get("X-Upstream") is None, f"{code}")
    else:
        refused(c, "malformed: two Authorization headers", proxy.get("/orders/7", [bearer, bearer]),
                malformed_status, 'error="invalid_request"')
    refused(c, "malformed: Authorization not text",
            proxy.get("/orders/7", [("Authorization", b"Bearer \xc3\xa9t\xc3\xa9")]),
            malformed_status, 'error="invalid_request"')
    refused(c, "keys unavailable",
            proxy.get("/orders/7", [("Authorization", "Bearer " + rs256_shaped(token))]),
            503, 'error="temporarily_unavailable"', retry_after=True)

    print(f"{name}: {c.passed} passed, {c.failed} failed")
    sys.exit(1 if c.failed else 0)


if __name__ == "__main__":
    if sys.argv[1] == "upstream":
        upstream(sys.argv[2])
    else:
        check(*sys.argv[2:])
