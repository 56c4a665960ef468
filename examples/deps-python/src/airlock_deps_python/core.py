"""Parse the embedded TOML catalogue and summarise it."""

from __future__ import annotations

from importlib import resources

import idna
import six
from packaging.specifiers import SpecifierSet
from packaging.version import Version

# tomli rather than the standard library's tomllib (3.11+): the example is about dependencies.
import tomli

SUPPORTED = SpecifierSet(">=1.0,<25")


def load_catalogue() -> dict:
    text = resources.files(__package__).joinpath("catalogue.toml").read_text(encoding="utf-8")
    return tomli.loads(text)


def summarise(catalogue: dict) -> list[dict]:
    """One row per package, newest version first."""
    rows = []
    for pkg in catalogue["package"]:
        version = Version(pkg["version"])
        rows.append(
            {
                "name": six.ensure_str(pkg["name"]),
                "version": str(version),
                "prerelease": version.is_prerelease,
                "supported": SUPPORTED.contains(version, prereleases=True),
                "host": idna.encode(pkg["homepage"], uts46=True).decode("ascii"),
            }
        )
    rows.sort(key=lambda r: Version(r["version"]), reverse=True)
    return rows


def render(title: str, rows: list[dict]) -> str:
    lines = [f"{title}: {len(rows)} packages"]
    for r in rows:
        flags = ",".join(f for f in ("pre" if r["prerelease"] else "", "ok" if r["supported"] else "unsupported") if f)
        lines.append(f"{r['name']:<20} {r['version']:<10} {flags:<16} {r['host']}")
    return "\n".join(lines) + "\n"
