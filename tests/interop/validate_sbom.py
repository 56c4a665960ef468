#!/usr/bin/env python3
"""Validates airlock's SBOMs with the formats' own tools, not with airlock's code.

    validate_sbom.py spdx FILE.spdx.json    # spdx-tools (what `pyspdxtools -i` runs): SPDX 2.3
    validate_sbom.py cyclonedx FILE.cdx.json  # cyclonedx-python-lib: strict JSON schema 1.6

Exit 0 and print "valid" when the document is valid; exit 1 with every message otherwise.
"""
import sys


def spdx(path: str) -> list[str]:
    from spdx_tools.spdx.parser.error import SPDXParsingError
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    try:
        document = parse_file(path)
    except SPDXParsingError as e:
        return [f"does not parse as SPDX: {m}" for m in e.get_messages()]
    messages = validate_full_spdx_document(document, "SPDX-2.3")
    return [f"{m.context.spdx_id or ''}: {m.validation_message}" for m in messages]


def cyclonedx(path: str) -> list[str]:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    validator = JsonStrictValidator(SchemaVersion.V1_6)
    with open(path, encoding="utf-8") as f:
        error = validator.validate_str(f.read(), all_errors=True)
    if error is None:
        return []
    # validate_str returns one ValidationError, or an iterable of them with all_errors.
    errors = list(error) if hasattr(error, "__iter__") else [error]
    messages = []
    for e in errors:
        data = getattr(e, "data", None)  # a jsonschema ValidationError
        if data is None or not hasattr(data, "message"):
            messages.append(str(e))
        else:
            where = "/".join(str(p) for p in data.absolute_path) or "(document)"
            messages.append(f"{where}: {data.message}")
    return messages


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in ("spdx", "cyclonedx"):
        print(__doc__, file=sys.stderr)
        return 2
    kind, path = sys.argv[1], sys.argv[2]
    messages = spdx(path) if kind == "spdx" else cyclonedx(path)
    for m in messages:
        print(f"{path}: {m}")
    if messages:
        return 1
    print("valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
