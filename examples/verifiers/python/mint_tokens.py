"""Tokens the example verifiers are tested with, minted without keyshift:
as the old HS256 issuer mints them (PyJWT), and as an attacker forges them.

    python3 mint_tokens.py SECRET_FILE [JWKS_URL]

prints `NAME TOKEN` lines: `old` (the old issuer's shape: iss legacy-auth,
no aud, a numeric user_id, scopes as an array in scp, typ JWT, no kid),
`old_wrong_secret`, `none` (alg none), and with a JWKS URL `confusion`
(HS256 keyed with the RSA public key's PEM, the classic alg confusion).
"""

import base64
import hashlib
import hmac
import json
import sys
import time
import urllib.request
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64_int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def main() -> None:
    secret = Path(sys.argv[1]).read_bytes().rstrip(b"\n")
    now = int(time.time())
    old = {
        "iss": "legacy-auth",
        "user_id": 4711,
        "scp": ["orders:read", "orders:write"],
        "iat": now,
        "exp": now + 600,
    }
    print("old", jwt.encode(old, secret, algorithm="HS256", headers={"typ": "JWT"}))
    print("old_wrong_secret", jwt.encode(old, b"x" * 32, algorithm="HS256"))
    unsigned = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode()) + "." + b64(json.dumps(old).encode())
    print("none", unsigned + ".")
    if len(sys.argv) > 2:
        with urllib.request.urlopen(sys.argv[2], timeout=5) as resp:
            jwk = json.load(resp)["keys"][0]
        pem = (
            RSAPublicNumbers(b64_int(jwk["e"]), b64_int(jwk["n"]))
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        claims = old | {"iss": "http://127.0.0.1", "aud": "https://api.test", "sub": "attacker"}
        header = {"alg": "HS256", "typ": "JWT", "kid": jwk["kid"]}
        signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
        tag = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
        print("confusion", signing_input + "." + b64(tag))


if __name__ == "__main__":
    main()
