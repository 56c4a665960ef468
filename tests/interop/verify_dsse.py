#!/usr/bin/env python3
"""Verify an airlock attestation with third-party code only (no airlock code involved).

    verify_dsse.py ENVELOPE_FILE PUBKEY_PEM [--artifact PATH]... [--vsa | --sbom | --trace]

ENVELOPE_FILE is an `.intoto.jsonl` file (its first line is used) or a Sigstore bundle v0.3
JSON (its `dsseEnvelope` is used). Checks, in order:

  1. the keyid convention: sha256 of the public key's SubjectPublicKeyInfo DER, computed here
     with pyca/cryptography, is the keyid of a signature (and the bundle's publicKey.hint);
  2. the DSSE signature, with securesystemslib (Envelope.from_dict + SSlibKey.from_crypto);
  3. payloadType, then the statement's structure with in-toto-attestation (Statement v1
     validator) and the predicate against its SLSA provenance v1 protobuf schema (with --vsa:
     its SLSA verification summary v1 schema instead; with --sbom: the predicate is an SPDX 2.3
     document, parsed and validated by spdx-tools);
  4. with --artifact, that each file's sha256 is a subject digest.

Exit status 0 when everything holds, 1 on any failure (reason on stderr).
Set up the interpreter with scripts/setup-test-env.sh.
"""

import argparse
import copy
import hashlib
import json
import sys

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
SLSA_VSA_V1 = "https://slsa.dev/verification_summary/v1"
SPDX_DOCUMENT_V23 = "https://spdx.dev/Document/v2.3"
RUNTIME_TRACE_V02 = "https://in-toto.io/attestation/runtime-trace/v0.2"
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"


class Failure(Exception):
    """A verification failure with a message for the user."""


class _Parser(argparse.ArgumentParser):
    # argparse exits 2 on usage errors; this script promises 1 for any failure.
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"verify_dsse: {message}", file=sys.stderr)
        sys.exit(1)


def load_envelope(path):
    """Returns (envelope dict, bundle hint or None)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".jsonl"):
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines:
            raise Failure(f"{path} is empty")
        text = lines[0]
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise Failure(f"{path} is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise Failure(f"{path} does not hold a JSON object")
    if "dsseEnvelope" not in doc:
        return doc, None
    if doc.get("mediaType") != BUNDLE_V03:
        raise Failure(f"bundle mediaType is {doc.get('mediaType')!r}, expected {BUNDLE_V03!r}")
    material = doc.get("verificationMaterial") or {}
    hint = (material.get("publicKey") or {}).get("hint")
    if not hint:
        raise Failure("bundle has no verificationMaterial.publicKey.hint")
    if material.get("tlogEntries", []) != []:
        raise Failure("bundle unexpectedly has transparency log entries")
    return doc["dsseEnvelope"], hint


def verify_signature(env_dict, pubkey_path, hint):
    """Verifies with securesystemslib; returns the decoded payload bytes."""
    from cryptography.hazmat.primitives import serialization
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError
    from securesystemslib.signer import SSlibKey

    with open(pubkey_path, "rb") as f:
        public_key = serialization.load_pem_public_key(f.read())
    spki_der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    keyid = hashlib.sha256(spki_der).hexdigest()
    envelope_keyids = [s.get("keyid") for s in env_dict.get("signatures", [])]
    if keyid not in envelope_keyids:
        raise Failure(
            f"no signature has keyid {keyid} (sha256 of the key's SPKI DER); "
            f"envelope keyids: {envelope_keyids}"
        )
    if hint is not None and hint != keyid:
        raise Failure(f"bundle publicKey.hint {hint!r} is not the key's keyid {keyid}")

    key = SSlibKey.from_crypto(public_key, keyid=keyid)
    # from_dict rewrites the signature dicts it is given, so it gets a copy.
    envelope = Envelope.from_dict(copy.deepcopy(env_dict))
    try:
        envelope.verify([key], 1)
    except VerificationError as e:
        raise Failure(f"securesystemslib: signature does not verify: {e}") from e
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise Failure(f"payloadType is {envelope.payload_type!r}, expected {IN_TOTO_PAYLOAD_TYPE!r}")
    print(f"ok: securesystemslib verified the DSSE signature ({key.scheme}, keyid {keyid})")
    return envelope.payload


def parse_statement(payload):
    """The statement dict, validated as an in-toto Statement v1 by in-toto-attestation."""
    import google.protobuf.json_format as pb_json
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    try:
        statement = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Failure(f"payload is not JSON: {e}") from e
    try:
        proto = pb_json.ParseDict(statement, statement_pb2.Statement())
        Statement.copy_from_pb(proto).validate()
    except (pb_json.ParseError, ValueError) as e:
        raise Failure(f"in-toto-attestation rejects the statement: {e}") from e
    return statement


def validate_vsa(payload):
    """A SLSA verification summary v1 statement, validated; returns the statement dict."""
    import google.protobuf.json_format as pb_json
    from in_toto_attestation.predicates.vsa.v1 import vsa_pb2

    statement = parse_statement(payload)
    if statement.get("predicateType") != SLSA_VSA_V1:
        raise Failure(f"predicateType is {statement.get('predicateType')!r}, expected {SLSA_VSA_V1!r}")
    predicate = copy.deepcopy(statement["predicate"])
    if not isinstance(predicate, dict) or not isinstance(predicate.get("verifier"), dict):
        raise Failure("predicate.verifier is not an object")
    # Two fields the packaged protobuf schema gets wrong or lacks are checked here and
    # removed, so that the strict parse below judges everything else: verifier.version (a
    # string map added by SLSA v1.1) and verifiedLevels (an array in the spec, a single
    # string in the schema: in-toto/attestation issue 425).
    version = predicate["verifier"].pop("version", {})
    levels = predicate.pop("verifiedLevels", None)
    for name, value, ok in (
        ("verifier.version", version, isinstance(version, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in version.items())),
        ("verifiedLevels", levels, isinstance(levels, list) and len(levels) > 0
            and all(isinstance(v, str) for v in levels)),
    ):
        if not ok:
            raise Failure(f"{name} is not what the spec requires: {value!r}")
    try:
        # Strict: unknown fields, wrong types and non-RFC 3339 timestamps are errors.
        vsa = pb_json.ParseDict(predicate, vsa_pb2.VerificationSummary())
    except pb_json.ParseError as e:
        raise Failure(f"predicate is not a SLSA verification summary v1: {e}") from e
    if not vsa.verifier.id or not vsa.resource_uri or not vsa.policy.uri:
        raise Failure("verifier.id, resourceUri and policy.uri are required")
    if vsa.verification_result not in ("PASSED", "FAILED"):
        raise Failure(f"verificationResult is {vsa.verification_result!r}")
    print(
        "ok: in-toto-attestation validated the Statement v1 and the SLSA verification summary "
        f"v1 predicate (verifier.id {vsa.verifier.id}, verificationResult "
        f"{vsa.verification_result}, verifiedLevels {levels})"
    )
    return statement


def validate_sbom(payload):
    """An SBOM statement whose predicate spdx-tools accepts as SPDX 2.3; returns the statement."""
    from spdx_tools.spdx.parser.jsonlikedict.json_like_dict_parser import JsonLikeDictParser
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    statement = parse_statement(payload)
    if statement.get("predicateType") != SPDX_DOCUMENT_V23:
        raise Failure(f"predicateType is {statement.get('predicateType')!r}, expected {SPDX_DOCUMENT_V23!r}")
    try:
        document = JsonLikeDictParser().parse(copy.deepcopy(statement["predicate"]))
    except Exception as e:
        raise Failure(f"spdx-tools cannot parse the predicate: {e}") from e
    messages = validate_full_spdx_document(document, "SPDX-2.3")
    if messages:
        raise Failure("spdx-tools: " + "; ".join(m.validation_message for m in messages))
    print(
        "ok: in-toto-attestation validated the Statement v1 and spdx-tools the SPDX 2.3 predicate "
        f"({len(document.packages)} packages)"
    )
    return statement


def validate_trace(payload):
    """A runtime-trace v0.2 statement: the Statement by in-toto-attestation, the predicate's
    required fields and shapes by the spec (in-toto/attestation spec/predicates/runtime-trace.md)."""
    from in_toto_attestation.v1 import resource_descriptor_pb2
    import google.protobuf.json_format as pb_json

    statement = parse_statement(payload)
    if statement.get("predicateType") != RUNTIME_TRACE_V02:
        raise Failure(f"predicateType is {statement.get('predicateType')!r}, expected {RUNTIME_TRACE_V02!r}")
    p = statement.get("predicate") or {}
    def text(obj, key):
        value = (obj or {}).get(key)
        if not isinstance(value, str) or not value:
            raise Failure(f"predicate field {key!r} must be a non-empty string")
        return value
    text(p.get("monitor"), "type")
    for key in ("hostID", "type", "event"):
        text(p.get("monitoredProcess"), key)
    log = p.get("monitorLog")
    if not isinstance(log, dict) or not any(k in log for k in ("process", "network", "fileAccess")):
        raise Failure("monitorLog needs at least one of process, network, fileAccess")
    for entry in log.get("fileAccess", []):
        try:
            pb_json.ParseDict(entry, resource_descriptor_pb2.ResourceDescriptor())
        except pb_json.ParseError as e:
            raise Failure(f"fileAccess entry is not a ResourceDescriptor: {e}") from e
    for entry in log.get("network", []):
        port = entry.get("port")
        if port is not None and not (isinstance(port, int) and 1 <= port <= 65535):
            raise Failure(f"network entry has port {port!r}")
        if "ip" not in entry and "hostname" not in entry and "path" not in entry:
            raise Failure(f"network entry names no endpoint: {entry!r}")
    print(
        f"ok: in-toto-attestation validated the Statement v1; runtime trace v0.2 predicate "
        f"({len(log.get('process', []))} programs, {len(log.get('fileAccess', []))} files, "
        f"{len(log.get('network', []))} network entries)"
    )
    return statement


def validate_statement(payload):
    """Structural validation with in-toto-attestation; returns the statement dict."""
    import google.protobuf.json_format as pb_json
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2

    statement = parse_statement(payload)
    if statement.get("predicateType") != SLSA_PROVENANCE_V1:
        raise Failure(f"predicateType is {statement.get('predicateType')!r}, expected {SLSA_PROVENANCE_V1!r}")
    try:
        # Strict: unknown fields, wrong types and non-RFC 3339 timestamps are errors.
        provenance = pb_json.ParseDict(statement["predicate"], provenance_pb2.Provenance())
    except pb_json.ParseError as e:
        raise Failure(f"predicate is not SLSA provenance v1: {e}") from e
    if not provenance.build_definition.build_type:
        raise Failure("predicate has no buildDefinition.buildType")
    if len(provenance.build_definition.external_parameters) == 0:
        raise Failure("predicate has empty buildDefinition.externalParameters")
    if not provenance.run_details.builder.id:
        raise Failure("predicate has no runDetails.builder.id")
    print(
        "ok: in-toto-attestation validated the Statement v1 and the SLSA provenance v1 "
        f"predicate (builder.id {provenance.run_details.builder.id})"
    )
    return statement


def check_artifacts(statement, artifacts):
    subjects = {s.get("digest", {}).get("sha256") for s in statement["subject"]}
    for path in artifacts:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() not in subjects:
            raise Failure(f"artifact {path} (sha256:{digest.hexdigest()}) is not a subject")
        print(f"ok: {path} sha256:{digest.hexdigest()} is a subject")


def main(argv):
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument("envelope", help=".intoto.jsonl file or Sigstore bundle v0.3 JSON")
    parser.add_argument("pubkey", help="SPKI PEM public key")
    parser.add_argument("--artifact", action="append", default=[], help="file that must be a subject")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--vsa", action="store_true", help="expect a SLSA verification summary, not provenance")
    kind.add_argument("--sbom", action="store_true", help="expect an SPDX 2.3 SBOM statement, not provenance")
    kind.add_argument("--trace", action="store_true", help="expect a runtime-trace v0.2 statement, not provenance")
    args = parser.parse_args(argv)
    try:
        env_dict, hint = load_envelope(args.envelope)
        payload = verify_signature(env_dict, args.pubkey, hint)
        if args.vsa:
            statement = validate_vsa(payload)
        elif args.sbom:
            statement = validate_sbom(payload)
        elif args.trace:
            statement = validate_trace(payload)
        else:
            statement = validate_statement(payload)
        check_artifacts(statement, args.artifact)
    except Failure as e:
        print(f"verify_dsse: FAILED: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # any other surprise is a failure too, never a pass
        print(f"verify_dsse: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print("verify_dsse: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
