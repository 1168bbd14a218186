"""The frame a caller asked for: the core's Arrow table and provenance → pandas, Polars
or Arrow (``output="pandas" | "polars" | "arrow"``).

Every fetch ends in one Arrow table (``time`` is ``timestamp[ns, tz=UTC]``) and one
provenance dict (query, source, simulated, months, coverage...). This module turns the
pair into the caller's choice, without copying more than the choice needs:

- ``pandas`` (the default): ``table.to_pandas()``, the provenance in ``df.attrs``;
  ``time`` is ``datetime64[ns, UTC]``.
- ``polars``: ``pl.from_arrow(table, rechunk=False)``, zero-copy (the frame's buffers
  are the Arrow table's, one chunk per month; ``df.rechunk()`` makes one); ``time`` is
  ``Datetime("ns", "UTC")``. Polars is optional: without it the request is one
  :class:`~aperiodic_jupyter.QueryError` line saying ``pip install polars``.
  Polars frames have no ``attrs``, so the provenance is kept next to the frame: call
  :func:`provenance` on the frame the fetch returned (a frame derived from it, by
  ``filter``, ``with_columns``... is a new object and has none).
- ``arrow``: the table itself (no copy), the provenance as JSON in its schema metadata
  under :data:`METADATA_KEY`; :func:`provenance` decodes it.

:func:`provenance` answers for all three, so code that reads where data came from does
not depend on the output chosen. ``with_price`` joins in Arrow before this conversion
(:mod:`.price`), so it works for every output.
"""

from __future__ import annotations

import json
import threading
import weakref
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import pandas as pd
import pyarrow as pa

from .errors import QueryError
from .frame import normalize_time, table_to_frame

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "OUTPUTS",
    "METADATA_KEY",
    "Output",
    "Frame",
    "check_output",
    "convert",
    "provenance",
    "with_provenance",
]

#: The values ``output=`` takes, the default first.
OUTPUTS: tuple[str, ...] = ("pandas", "polars", "arrow")
#: The schema-metadata key under which an Arrow output carries its provenance (JSON).
METADATA_KEY = b"aperiodic_jupyter"

Output: TypeAlias = Literal["pandas", "polars", "arrow"]
#: What a fetch returns, depending on ``output``.
Frame: TypeAlias = "pd.DataFrame | pl.DataFrame | pa.Table"

# Polars frames have no attrs: their provenance lives here, keyed by id(frame), and
# leaves with the frame (weakref.finalize), so an id reused later never finds it.
_polars_lock = threading.Lock()
_polars_provenance: dict[int, dict[str, Any]] = {}


def check_output(output: object) -> str:
    """``output`` as one of :data:`OUTPUTS`; anything else is one :class:`QueryError`
    line listing the valid values, and so is ``polars`` when Polars is not installed
    (checked here, before anything is downloaded)."""
    name = output.strip().lower() if isinstance(output, str) else output
    if name not in OUTPUTS:
        raise QueryError(f"unknown output {output!r}; valid: {', '.join(OUTPUTS)}")
    if name == "polars":
        _polars()
    return str(name)


def _polars() -> Any:
    try:
        import polars
    except ImportError:
        raise QueryError("output='polars' needs Polars, which is not installed: pip install polars") from None
    return polars


def with_provenance(table: pa.Table, attrs: dict[str, Any]) -> pa.Table:
    """``table`` with ``attrs`` as JSON in its schema metadata under :data:`METADATA_KEY`
    (other metadata kept). Only the schema is replaced: the columns are the same
    buffers."""
    metadata = dict(table.schema.metadata or {})
    metadata[METADATA_KEY] = json.dumps(attrs, default=str).encode()
    return table.replace_schema_metadata(metadata)


def convert(table: pa.Table, attrs: dict[str, Any], output: str = "pandas") -> Frame:
    """The fetch's result in the form asked for (see the module docstring).

    Args:
        table: the core's table (``time`` tz-aware UTC, as :func:`.frame.assemble`
            leaves it).
        attrs: the provenance: ``df.attrs`` for pandas, the schema metadata for Arrow,
            :func:`provenance` for Polars.
        output: ``pandas``, ``polars`` or ``arrow``.
    """
    output = check_output(output)
    table = normalize_time(table)  # a no-op (the same table) unless the result is empty
    if output == "pandas":
        df = table_to_frame(table)
        df.attrs.update(attrs)
        return df
    if output == "arrow":
        return with_provenance(table, attrs)
    pl = _polars()
    # rechunk=False: keep one chunk per month instead of copying them into one.
    frame = pl.from_arrow(table.replace_schema_metadata(None), rechunk=False)
    _remember(frame, attrs)
    return frame


def _remember(frame: Any, attrs: dict[str, Any]) -> None:
    key = id(frame)
    with _polars_lock:
        _polars_provenance[key] = dict(attrs)
    weakref.finalize(frame, _forget, key)


def _forget(key: int) -> None:
    with _polars_lock:
        _polars_provenance.pop(key, None)


def provenance(frame: Any) -> dict[str, Any]:
    """Where a fetched frame came from (``query``, ``source``, ``simulated``, ``label``,
    ``months``, ``coverage``...), whatever its output: ``df.attrs`` of a pandas frame,
    the schema metadata of an Arrow table, the record kept for a Polars frame.

    Raises:
        QueryError: the object carries no provenance (e.g. a Polars frame derived from
            the one a fetch returned).
    """
    if isinstance(frame, pd.DataFrame):
        return dict(frame.attrs)
    if isinstance(frame, pa.Table):
        raw = (frame.schema.metadata or {}).get(METADATA_KEY)
        if raw is None:
            raise QueryError("this Arrow table carries no aperiodic_jupyter provenance in its schema metadata")
        return dict(json.loads(raw))
    with _polars_lock:
        found = _polars_provenance.get(id(frame))
    if found is None:
        kind = f"{type(frame).__module__.split('.')[0]}.{type(frame).__name__}"
        raise QueryError(
            f"no provenance recorded for this {kind}: only the frame a fetch returned has it "
            "(a Polars frame derived from it by filter, select... is a new object)"
        )
    return dict(found)
