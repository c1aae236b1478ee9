#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/.

Run once, from the repository root: python3 fuzz/seed.py KEY.pem
KEY.pem is the RSA private key whose public half is fuzz/jwks.json (made with
`openssl genrsa -out KEY.pem 2048`; the modulus went into jwks.json). The key
is not kept: the seeds it signed are committed. Seeds are real tokens the
verifier accepts (so the fuzzer starts deep in the checks), the attack
catalog of crates/verifier/tests/attacks.rs in miniature, JWKS documents,
config files and token requests.
"""
import base64, hashlib, hmac, json, os, subprocess, sys

NOW = 1_800_000_000
SECRET = b"fuzzing-secret-fuzzing-secret-32"
ISS, AUD = "https://issuer.fuzz", "https://api.fuzz"
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
key = sys.argv[1]


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def seg(obj):
    return b64(obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode())


def hs(header, claims, secret=SECRET):
    inp = f"{seg(header)}.{seg(claims)}"
    return f"{inp}.{b64(hmac.new(secret, inp.encode(), hashlib.sha256).digest())}"


def rs(header, claims):
    inp = f"{seg(header)}.{seg(claims)}"
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=inp.encode(),
                         capture_output=True, check=True).stdout
    return f"{inp}.{b64(sig)}"


def write(target, name, data):
    os.makedirs(os.path.join(root, target), exist_ok=True)
    with open(os.path.join(root, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


DUP_CLAIMS = b'{"sub":"a","sub":"b","exp":1}'
BAD_UTF8_HEADER = b'{"alg":"HS256","x":"\xff\xfe"}'
claims = {"iss": ISS, "aud": AUD, "sub": "svc-a", "client_id": "svc-a", "scope": "read write",
          "iat": NOW, "nbf": NOW, "exp": NOW + 600, "jti": "j1"}
pub = open(os.path.join(os.path.dirname(root), "jwks.json")).read()
tokens = {
    "hs256_valid": hs({"alg": "HS256", "typ": "at+jwt"}, claims),
    "rs256_valid": rs({"alg": "RS256", "typ": "at+jwt", "kid": "fuzz-1"}, claims),
    "alg_none": f"{seg({'alg': 'none'})}.{seg(claims)}.",
    "alg_none_caps": f"{seg({'alg': 'NONE'})}.{seg(claims)}.",
    "alg_confusion": hs({"alg": "HS256", "kid": "fuzz-1"}, claims, pub.encode()),
    "crit": hs({"alg": "HS256", "crit": ["exp"]}, claims),
    "jku": rs({"alg": "RS256", "kid": "fuzz-1", "jku": "http://evil/jwks"}, claims),
    "jwk_header": rs({"alg": "RS256", "jwk": json.loads(pub)["keys"][0]}, claims),
    "unknown_kid": rs({"alg": "RS256", "kid": "rotated-2"}, claims),
    "dup_claims": seg({"alg": "HS256"}) + "." + b64(DUP_CLAIMS) + ".AAAA",
    "bad_utf8": b64(BAD_UTF8_HEADER) + "." + seg(claims) + ".AAAA",
    "expired": hs({"alg": "HS256"}, dict(claims, exp=NOW - 3600)),
    "empty_sub": hs({"alg": "HS256"}, dict(claims, sub="")),
    "numeric_sub": hs({"alg": "HS256"}, dict(claims, sub=42)),
    "aud_array": hs({"alg": "HS256"}, dict(claims, aud=[AUD, "x"])),
    "four_segments": "a.b.c.d",
    "padding": hs({"alg": "HS256"}, claims) + "==",
    "long_kid": rs({"alg": "RS256", "kid": "k" * 600}, claims),
}
for name, token in tokens.items():
    write("jws", name, token)
    write("verify", name, token)

write("jwks", "keyshift", pub)
doc = json.loads(pub)
k = doc["keys"][0]
write("jwks", "e3", json.dumps({"keys": [dict(k, e="Aw")]}))
write("jwks", "dup_kid", json.dumps({"keys": [k, k]}))
write("jwks", "ec_and_oct", json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
                                                  {"kty": "oct", "k": "c2VjcmV0"}]}))
write("jwks", "small", json.dumps({"keys": [dict(k, n=b64(b"\xc3" * 64))]}))
write("jwks", "enc_use", json.dumps({"keys": [dict(k, use="enc")]}))
write("jwks", "nested", '{"keys":' + "[" * 64 + "]" * 64 + "}")

write("config", "contract", """phase = "dual"

[issuer]
listen = "127.0.0.1:8080"
issuer = "http://127.0.0.1:8080"
audience = "https://api.example.com"
token_ttl = "15m"
key_dir = "keys"
hs256_secret_file = "hs256.secret"

[[issuer.clients]]
id = "svc-a"
secret_hash = "sha256:5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
scopes = ["read", "write"]

[verifier]
listen = "127.0.0.1:8081"
issuer = "http://127.0.0.1:8080"
audience = "https://api.example.com"
jwks_url = "http://127.0.0.1:8080/.well-known/jwks.json"
hs256_secret_file = "hs256.secret"
accept = ["HS256", "RS256"]
""")
write("config", "asymmetric_verifier", """phase = "asymmetric"
[verifier]
issuer = "https://idp.example.com"
audience = "api"
jwks_url = "https://idp.example.com/jwks"
max_token_lifetime = "1h"
jwks_max_staleness = "6h"
admin_listen = "127.0.0.1:9091"
""")
write("config", "slow_hashes", """phase = "legacy"
[issuer]
issuer = "legacy"
audience = "a"
hs256_secret_file = "s"
[[issuer.clients]]
id = "old"
secret_hash = "$2b$04$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui"
scopes = ["read"]
[[issuer.clients]]
id = "older"
secret_hash = "$pbkdf2-sha256$i=1000,l=32$c2FsdA$aGFzaA"
scopes = []
""")
write("config", "huge_duration", 'phase = "dual"\n[issuer]\ntoken_ttl = "18446744073709551615s"\n')

basic = base64.b64encode(b"svc-a:s3cret").decode()
write("token_request", "basic", f"Basic {basic}\ngrant_type=client_credentials&scope=read+write")
write("token_request", "post", "\ngrant_type=client_credentials&client_id=svc-a&client_secret=s3cret")
write("token_request", "both", f"Basic {basic}\ngrant_type=client_credentials&client_secret=x")
write("token_request", "repeated", "\nscope=a&scope=b")
write("token_request", "bad_percent", "\nclient_id=%ff%fe&client_secret=%")
write("token_request", "reserved", f"Basic {base64.b64encode(b'svc%3Aa%25b:p%2Bss+w%3Ard').decode()}\ngrant_type=client_credentials")
