"""The old system's verifier, as legacy fleets wrote it: PyJWT with the
shared secret and the old issuer's name; no `typ` check, no `kid`, no
`aud`, HS256 only. It is not an example to copy: `run-tests.sh` runs it to
show that keyshift's HS256 tokens, shaped by `[issuer.legacy]`, still pass
the verifiers a fleet has not replaced yet (phases legacy and dual).

    python3 old_verifier.py SECRET_FILE ISSUER < "NAME TOKEN" lines
"""

import sys
from pathlib import Path

import jwt


def main() -> int:
    secret = Path(sys.argv[1]).read_bytes().rstrip(b"\n")
    for line in sys.stdin:
        name, _, token = line.strip().partition(" ")
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                issuer=sys.argv[2],
                options={"require": ["exp", "iss"], "verify_aud": False},
            )
            print(f"{name} ok sub={claims.get('sub')}")
        except jwt.PyJWTError as e:
            print(f"{name} rejected: {type(e).__name__}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
