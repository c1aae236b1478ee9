#!/usr/bin/env python3
"""Validates keyshift's metadata the way strict OAuth clients do: authlib's
AuthorizationServerMetadata (RFC 8414) and OpenIDProviderMetadata (OpenID
Connect Discovery) on the documents a running issuer serves.

Usage: metadata-check.py BASE_URL ISSUER_PATH
  BASE_URL     where the issuer listens, e.g. http://127.0.0.1:8080
  ISSUER_PATH  the path of its configured issuer URL, e.g. /tenant-a ("" for none)
"""

import json
import sys
import urllib.request

from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata


def fetch(url):
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


def main():
    base, path = sys.argv[1], sys.argv[2]
    locations = [
        ("/.well-known/oauth-authorization-server", AuthorizationServerMetadata),
        ("/.well-known/openid-configuration", OpenIDProviderMetadata),
    ]
    if path:
        # RFC 8414 §3.1 inserts the well-known part; OIDC Discovery §4 appends it.
        locations += [
            (f"/.well-known/oauth-authorization-server{path}", AuthorizationServerMetadata),
            (f"{path}/.well-known/openid-configuration", OpenIDProviderMetadata),
        ]
    failed = 0
    for location, model in locations:
        try:
            model(fetch(base + location)).validate()
            print(f"ok   {model.__name__}.validate() on {location}")
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failed += 1
            print(f"FAIL {model.__name__}.validate() on {location}: {e}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
