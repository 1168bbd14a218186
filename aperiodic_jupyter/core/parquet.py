"""Decoding a downloaded file: the one check every file passes before it is cached."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["read_parquet_bytes"]


def read_parquet_bytes(raw: bytes | bytearray) -> pa.Table:
    """Parse and fully decode a downloaded file; raises on truncation or corruption."""
    return pq.read_table(pa.BufferReader(raw))  # reads the bytes in place, no copy
