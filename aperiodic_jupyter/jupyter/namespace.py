"""Binding results to names in the user's namespace, without breaking the session.

``%flow … -o NAME`` and the export bar's "to variable" both write into the kernel's
namespace; a name like ``print``, ``get_ipython`` or ``__builtins__`` would break every
later cell, so such names are refused in one line. Where no IPython runs (marimo, a
script) there is no such namespace: :func:`ipython_namespace` says so.
"""

from __future__ import annotations

import builtins
import keyword
import sys
from typing import Any

from ..core.errors import QueryError

__all__ = ["check_variable_name", "ipython_namespace"]

#: Names IPython itself keeps in the user namespace (history, output cache, helpers).
_IPYTHON_NAMES = frozenset(
    {"get_ipython", "exit", "quit", "In", "Out", "_", "__", "___", "_i", "_ii", "_iii", "_ih", "_oh", "_dh"}
)


def check_variable_name(name: str) -> str:
    """``name`` if binding a value to it is safe, else one :class:`QueryError` line."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise QueryError(f"{name!r} is not a Python variable name; use letters, digits and _, e.g. flows")
    if name.startswith("__") and name.endswith("__"):
        raise QueryError(f"{name!r} is a Python special name; pick another, e.g. flows")
    if name in _IPYTHON_NAMES or (name.startswith("_i") and name[2:].isdigit()) or (name.startswith("_") and name[1:].isdigit()):
        raise QueryError(f"{name!r} belongs to IPython (history and output); pick another, e.g. flows")
    if hasattr(builtins, name):
        raise QueryError(f"{name!r} is a Python builtin and binding it would hide it; pick another, e.g. flows")
    return name


def ipython_namespace() -> dict[str, Any] | None:
    """IPython's user namespace, or ``None`` where no IPython runs (marimo, scripts)."""
    ipython = sys.modules.get("IPython")  # never imported: no IPython is running
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "user_ns", None)
