"""Readers for public trade dumps, ready for :func:`~aperiodic_jupyter.compute_flow`.

Both return a pyarrow Table with ``time`` (UTC timestamps), ``price`` (quote),
``quantity`` (**base asset**) and ``is_buy`` (the taker bought).

- Binance aggTrades CSV (data.binance.vision), with or without the header row:
  ``agg_trade_id, price, quantity, first_trade_id, last_trade_id, transact_time,
  is_buyer_maker`` (spot files add ``is_best_match``; their times may be µs).
- OKX trades CSV (okx.com data download): ``trade_id, side, size, price,
  created_time`` in any order, optionally with ``instrument_name``. Swap sizes are in
  contracts: they are converted to base units with the instrument's contract size, taken
  from the shipped OKX venue list or from ``contract_size=``.
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .errors import FormatError

__all__ = ["read_binance_aggtrades", "read_okx_trades"]

_BINANCE_COLUMNS = ["agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time", "is_buyer_maker"]
_OKX_REQUIRED = {"side", "size", "price", "created_time"}


def _epoch_to_time(col: pa.ChunkedArray) -> pa.ChunkedArray:
    col = col.cast(pa.int64())
    top = pc.max(col).as_py() or 0
    unit = "us" if top >= 10**14 else "ms"
    return col.cast(pa.timestamp(unit)).cast(pa.timestamp("ns", tz="UTC"))


def _first_line(path: str | os.PathLike[str]) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.readline().strip()


def read_binance_aggtrades(path: str | os.PathLike[str]) -> pa.Table:
    """Read a Binance aggTrades CSV (futures or spot, header row optional)."""
    first = _first_line(path)
    fields = [f.strip().lower() for f in first.split(",")]
    has_header = bool(fields) and fields[0] == "agg_trade_id"
    if not has_header and not (len(fields) in (7, 8) and fields[0].isdigit()):
        raise FormatError(
            f"{os.fspath(path)!r} is not a Binance aggTrades CSV: expected 7 columns "
            f"({', '.join(_BINANCE_COLUMNS)}), found {first[:80]!r}"
        )
    names = _BINANCE_COLUMNS + (["is_best_match"] if len(fields) == 8 else [])
    read_opts = pacsv.ReadOptions(column_names=None if has_header else names)
    convert = pacsv.ConvertOptions(
        column_types={"price": pa.float64(), "quantity": pa.float64(), "transact_time": pa.int64(), "is_buyer_maker": pa.bool_()},
        true_values=["true", "True", "TRUE"],
        false_values=["false", "False", "FALSE"],
    )
    try:
        table = pacsv.read_csv(path, read_options=read_opts, convert_options=convert)
    except (pa.ArrowInvalid, KeyError) as exc:
        raise FormatError(f"{os.fspath(path)!r} does not parse as Binance aggTrades: {str(exc).splitlines()[0]}") from None
    missing = {"price", "quantity", "transact_time", "is_buyer_maker"} - set(table.column_names)
    if missing:
        raise FormatError(f"{os.fspath(path)!r} lacks the aggTrades columns {sorted(missing)}")
    return pa.table(
        {
            "time": _epoch_to_time(table["transact_time"]),
            "price": table["price"],
            "quantity": table["quantity"],
            "is_buy": pc.invert(table["is_buyer_maker"]),
        }
    )


def read_okx_trades(path: str | os.PathLike[str], *, contract_size: float | None = None) -> pa.Table:
    """Read an OKX trades CSV. For swaps (``instrument_name`` ending in ``-SWAP``) sizes
    are contracts and are multiplied by the contract size (looked up in the OKX venue
    list unless ``contract_size`` is given); spot sizes are already base units."""
    fields = {f.strip().lower() for f in _first_line(path).split(",")}
    if not _OKX_REQUIRED <= fields:
        raise FormatError(
            f"{os.fspath(path)!r} is not an OKX trades CSV: expected a header with "
            f"{', '.join(sorted(_OKX_REQUIRED))} (found {', '.join(sorted(fields))[:120]})"
        )
    try:
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types={"price": pa.float64(), "size": pa.float64(), "created_time": pa.int64()}
            ),
        )
    except pa.ArrowInvalid as exc:
        raise FormatError(f"{os.fspath(path)!r} does not parse as OKX trades: {str(exc).splitlines()[0]}") from None
    size = table["size"]
    if contract_size is None and "instrument_name" in table.column_names and table.num_rows:
        name = str(table["instrument_name"][0].as_py())
        if name.upper().endswith("-SWAP"):
            from .symbols import instrument

            contract_size = instrument("okx-perps", name).contract_size
            if contract_size is None:
                raise FormatError(f"no contract size is known for {name}; pass contract_size=")
    if contract_size is not None:
        size = pc.multiply(size, pa.scalar(float(contract_size)))
    side = pc.utf8_lower(table["side"].cast(pa.string()))
    if not pc.all(pc.is_in(side, pa.array(["buy", "sell"]))).as_py():
        raise FormatError(f"{os.fspath(path)!r}: side must be buy or sell")
    return pa.table(
        {
            "time": _epoch_to_time(table["created_time"]),
            "price": table["price"],
            "quantity": size,
            "is_buy": pc.equal(side, "buy"),
        }
    )
