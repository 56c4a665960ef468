"""airlock example ``deps-python``: a release table computed with PyPI dependencies.

Every dependency is a pure-Python wheel pinned by hash in requirements.txt; in a
sandboxed build the runner provides them offline.
"""

from .core import load_catalogue, summarise, render

__all__ = ["load_catalogue", "summarise", "render"]
__version__ = "0.1.0"
