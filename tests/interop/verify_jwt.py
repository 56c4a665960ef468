#!/usr/bin/env python3
"""Check airlock build tokens with PyJWT only (no airlock code involved).

    verify_jwt.py ISSUER CASES_JSON

Reads ISSUER/.well-known/openid-configuration, checks its fields, reads the JWKS at its
jwks_uri (checking each key's shape: EC P-256, 32-byte x and y, kid, alg ES256, use sig), then,
for each case {"name", "token", "audience"} in CASES_JSON, verifies the token the way a cloud
provider does: PyJWKClient picks the key by kid, jwt.decode pins ES256 and checks issuer,
audience, exp, nbf and iat and requires the registered and airlock claims.

Prints one JSON object: {name: {"ok": true, "claims": {...}} | {"ok": false, "error": "..."}}.
Exit status 0 when discovery and JWKS are well-formed (whatever the cases' outcomes), 1 if not.
Set up the interpreter with scripts/setup-test-env.sh.
"""

import base64
import json
import sys
import urllib.request

import jwt

REQUIRED = ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"]
AIRLOCK_CLAIMS = ["job_id", "repository", "ref", "sha", "profile", "builder_id",
                  "runner_id", "job_definition_sha256"]


def fail(msg):
    print(f"verify_jwt.py: {msg}", file=sys.stderr)
    sys.exit(1)


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def main():
    issuer, cases_path = sys.argv[1], sys.argv[2]
    with urllib.request.urlopen(issuer + "/.well-known/openid-configuration") as r:
        disc = json.load(r)
    if disc.get("issuer") != issuer:
        fail(f"discovery issuer {disc.get('issuer')!r} != {issuer!r}")
    if disc.get("id_token_signing_alg_values_supported") != ["ES256"]:
        fail("id_token_signing_alg_values_supported is not ['ES256']")
    if disc.get("response_types_supported") != ["id_token"]:
        fail("response_types_supported is not ['id_token']")
    for field in ("jwks_uri", "subject_types_supported", "claims_supported"):
        if field not in disc:
            fail(f"discovery lacks {field}")
    for claim in REQUIRED + AIRLOCK_CLAIMS:
        if claim not in disc["claims_supported"]:
            fail(f"claims_supported lacks {claim}")

    with urllib.request.urlopen(disc["jwks_uri"]) as r:
        jwks = json.load(r)
    if not jwks.get("keys"):
        fail("JWKS has no keys")
    for k in jwks["keys"]:
        if (k.get("kty"), k.get("crv"), k.get("alg"), k.get("use")) != ("EC", "P-256", "ES256", "sig"):
            fail(f"JWKS key has the wrong shape: {k}")
        if not k.get("kid"):
            fail("JWKS key has no kid")
        if "=" in k["x"] + k["y"] or len(b64url(k["x"])) != 32 or len(b64url(k["y"])) != 32:
            fail("JWKS x/y are not unpadded base64url of 32 bytes")
        if "d" in k:
            fail("JWKS publishes a private key")

    client = jwt.PyJWKClient(disc["jwks_uri"], cache_keys=False, cache_jwk_set=False)
    with open(cases_path) as f:
        cases = json.load(f)
    results = {}
    for case in cases:
        try:
            key = client.get_signing_key_from_jwt(case["token"])
            claims = jwt.decode(
                case["token"],
                key.key,
                algorithms=["ES256"],
                audience=case["audience"],
                issuer=issuer,
                options={"require": REQUIRED, "verify_signature": True},
            )
            missing = [c for c in AIRLOCK_CLAIMS if c not in claims]
            if missing:
                results[case["name"]] = {"ok": False, "error": f"missing claims {missing}"}
            else:
                results[case["name"]] = {"ok": True, "claims": claims}
        except Exception as e:  # every rejection is a result, not a crash
            results[case["name"]] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    print(json.dumps(results, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
