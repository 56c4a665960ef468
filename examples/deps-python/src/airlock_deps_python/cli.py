"""``deps-python`` / ``python -m airlock_deps_python``: print the summary."""

import sys

from .core import load_catalogue, render, summarise


def main() -> int:
    catalogue = load_catalogue()
    sys.stdout.write(render(catalogue["title"], summarise(catalogue)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
