"""A dual-mode verifier for keyshift tokens, to copy into a Python service.

HS256 tokens are checked against the shared secret, RS256 tokens against the
issuer's JWKS (PyJWKClient, by kid): the key decides the algorithm, never the
token. Which algorithms pass follows the migration phase, as keyshift's own
verifier does. The optional legacy profile loosens HS256 checks only, with
the names of keyshift's `[verifier.legacy]`.

    verifier = KeyshiftVerifier(Config.load("verifier.json"))
    claims = verifier.verify(token)      # raises Rejected

Run as a program, it reads `NAME TOKEN` lines on stdin and prints one
decision per line (`NAME ok sub=… scope=… alg=…` or `NAME rejected: why`).

Needs PyJWT with its crypto extra (`pip install "PyJWT[crypto]"`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jwt
from jwt import PyJWKClient

# Which algorithms each phase accepts (keyshift's phase table).
ACCEPTS = {
    "legacy": {"HS256"},
    "dual": {"HS256", "RS256"},
    "transition": {"HS256", "RS256"},
    "asymmetric": {"RS256"},
}

# `typ` values keyshift's verifier accepts by default (RFC 9068, or none).
TYPES = {None, "JWT", "jwt", "at+jwt", "application/at+jwt"}

LEEWAY_SECONDS = 30


class Rejected(Exception):
    """The token is refused; the message says why (never the token)."""


@dataclass(frozen=True)
class Legacy:
    """keyshift's `[verifier.legacy]`: looser checks of HS256 tokens only."""

    issuers: tuple[str, ...] = ()  # more iss values; "" = no iss
    audience_required: bool = True
    subject_claim: str = "sub"
    scope_claim: str = "scope"


@dataclass(frozen=True)
class Config:
    phase: str
    issuer: str
    audience: str
    hs256_secret: bytes | None = None
    jwks_url: str | None = None
    legacy: Legacy | None = None

    @staticmethod
    def load(path: str) -> "Config":
        """Reads the JSON config (keyshift's key names)."""
        raw = json.loads(Path(path).read_text())
        if raw["phase"] not in ACCEPTS:
            raise ValueError(f"phase: unknown phase {raw['phase']!r}")
        secret = None
        if raw.get("hs256_secret_file"):
            secret = Path(raw["hs256_secret_file"]).read_bytes()
            secret = secret[:-1] if secret.endswith(b"\n") else secret
            secret = secret[:-1] if secret.endswith(b"\r") else secret
        legacy = raw.get("legacy")
        return Config(
            phase=raw["phase"],
            issuer=raw["issuer"],
            audience=raw["audience"],
            hs256_secret=secret,
            jwks_url=raw.get("jwks_url"),
            legacy=Legacy(
                issuers=tuple(legacy.get("issuers", ())),
                audience_required=legacy.get("audience_required", True),
                subject_claim=legacy.get("subject_claim", "sub"),
                scope_claim=legacy.get("scope_claim", "scope"),
            )
            if legacy is not None
            else None,
        )


@dataclass
class KeyshiftVerifier:
    config: Config
    _jwks: PyJWKClient | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.config.jwks_url:
            # Caches keys; an unknown kid refetches the JWKS.
            self._jwks = PyJWKClient(self.config.jwks_url, cache_keys=True)

    def verify(self, token: str) -> dict:
        """The token's claims, with `sub` and `scope` as text; or Rejected."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise Rejected("malformed token") from e
        alg = header.get("alg")
        if alg not in ACCEPTS[self.config.phase]:
            raise Rejected("algorithm not accepted")
        if header.get("typ") not in TYPES:
            raise Rejected("typ not accepted")
        # The key decides: HS256 only with the secret, RS256 only with a
        # JWKS key, each with exactly its one algorithm.
        if alg == "HS256":
            if self.config.hs256_secret is None:
                raise Rejected("algorithm not accepted")
            key = self.config.hs256_secret
        else:
            if self._jwks is None:
                raise Rejected("algorithm not accepted")
            try:
                key = self._jwks.get_signing_key_from_jwt(token).key
            except jwt.PyJWTError as e:
                raise Rejected("unknown key id") from e
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                leeway=LEEWAY_SECONDS,
                # iss and aud are checked below, with the legacy profile.
                # A legacy subject may be a number: checked below too.
                options={
                    "require": ["exp"],
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                },
            )
        except jwt.ExpiredSignatureError as e:
            raise Rejected("token expired") from e
        except jwt.PyJWTError as e:
            raise Rejected(f"invalid token: {type(e).__name__}") from e
        legacy = self.config.legacy if alg == "HS256" else None
        return self._claims(claims, legacy) | {"alg": alg}

    def _claims(self, claims: dict, legacy: Legacy | None) -> dict:
        iss = claims.get("iss")
        if iss != self.config.issuer:
            if legacy is None:
                raise Rejected("wrong issuer")
            if iss is None:
                listed = "" in legacy.issuers
            else:
                listed = isinstance(iss, str) and iss != "" and iss in legacy.issuers
            if not listed:
                raise Rejected("wrong issuer")
        aud = claims.get("aud")
        if aud is None:
            if legacy is None or legacy.audience_required:
                raise Rejected("wrong audience")
        elif not (aud == self.config.audience or (isinstance(aud, list) and self.config.audience in aud)):
            raise Rejected("wrong audience")
        sub_claim = legacy.subject_claim if legacy else "sub"
        sub = claims.get(sub_claim, claims.get("sub"))
        if isinstance(sub, int) and not isinstance(sub, bool) and legacy is not None:
            sub = str(sub)
        if not isinstance(sub, str):
            raise Rejected("sub missing")
        scope_claim = legacy.scope_claim if legacy else "scope"
        scope = claims.get(scope_claim, claims.get("scope", ""))
        if isinstance(scope, list) and legacy is not None and all(isinstance(s, str) for s in scope):
            scope = " ".join(scope)
        if not isinstance(scope, str):
            raise Rejected("scope of the wrong type")
        return {"sub": sub, "scope": scope, "client_id": claims.get("client_id", sub)}


def main() -> int:
    verifier = KeyshiftVerifier(Config.load(sys.argv[1]))
    for line in sys.stdin:
        name, _, token = line.strip().partition(" ")
        try:
            c = verifier.verify(token)
            print(f"{name} ok sub={c['sub']} scope={c['scope'].replace(' ', ',')} alg={c['alg']}")
        except Rejected as e:
            print(f"{name} rejected: {e}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
