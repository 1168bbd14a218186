"""Months → pandas frame: the month-by-month build (each month decoded once, straight
into the frame's columns) gives exactly the frame that stacking the decoded months and
``to_pandas`` gives, and hands every case it does not copy itself to that path."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aperiodic_jupyter import SchemaError, make_query
from aperiodic_jupyter.core.frame import assemble, months_to_frame, table_to_frame
from aperiodic_jupyter.core.parquet import MonthData
from aperiodic_jupyter.core.ranges import Month

from .server import synthetic_table

SYMBOL = "perpetual-BTC-USDT:USDT"


def month_table(month: int, interval: str = "1h", year: int = 2024) -> pa.Table:
    table = synthetic_table("flow", "binance-futures", SYMBOL, interval, "exchange", year, month)
    assert table is not None
    return table


def as_file(table: pa.Table) -> MonthData:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return MonthData.of_file(bytearray(sink.getvalue()))


def both_ways(parts: list[tuple[Month, MonthData]], start: str, end: str, interval: str = "1h") -> pd.DataFrame:
    """The month-by-month frame, checked against decode → assemble → to_pandas."""
    query = make_query("binance-futures", "BTC", interval, start, end)
    built = months_to_frame(parts, query)
    assert built is not None, "the month-by-month build refused months it should copy"
    pd.testing.assert_frame_equal(built, table_to_frame(assemble([(m, p.table()) for m, p in parts], query)))
    return built


@pytest.mark.parametrize("kept", ["file", "table"])
def test_whole_months_and_ranges_cut_inside_months_give_the_stacked_frame(kept):
    parts = [
        (Month(2024, m), as_file(month_table(m)) if kept == "file" else MonthData.of_table(month_table(m))) for m in (1, 2, 3)
    ]
    whole = both_ways(parts, "2024-01-01", "2024-03-31")
    assert len(whole) == 91 * 24 and str(whole["time"].dtype) == "datetime64[ns, UTC]"
    cut = both_ways(parts, "2024-01-15", "2024-03-10")
    assert cut["time"].iloc[0] == pd.Timestamp("2024-01-15", tz="UTC")
    assert cut["time"].iloc[-1] == pd.Timestamp("2024-03-10 23:00", tz="UTC")
    one_day = both_ways(parts[1:2], "2024-02-29", "2024-02-29")
    assert len(one_day) == 24 and one_day["taker_buy_count"].tolist() == list(range(28 * 24, 29 * 24))


def test_minute_months_are_copied_in_pieces_and_match():
    parts = [(Month(2024, m), as_file(month_table(m, "1m"))) for m in (1, 2)]
    df = both_ways(parts, "2024-01-31", "2024-02-01", "1m")
    assert len(df) == 2 * 1440
    assert df["taker_buy_count"].iloc[0] == 30 * 1440 and df["taker_buy_count"].iloc[-1] == 1440 - 1


def test_the_frame_is_the_callers_own_to_change():
    part = as_file(month_table(1))
    query = make_query("binance-futures", "BTC", "1h", "2024-01-01", "2024-01-31")
    df = months_to_frame([(Month(2024, 1), part)], query)
    assert df is not None
    df.loc[0, "taker_buy_volume"] = -1.0
    df["taker_buy_count"] *= 2
    assert df.loc[0, "taker_buy_volume"] == -1.0 and df["taker_buy_count"].iloc[3] == 6
    again = months_to_frame([(Month(2024, 1), part)], query)
    assert again is not None and again.loc[0, "taker_buy_volume"] == 0.0  # the month itself is untouched


def test_months_without_rows_and_a_month_kept_as_table_mix_with_files():
    empty = MonthData.of_table(pa.table({"time": pa.array([], type=pa.timestamp("us"))}))
    parts = [
        (Month(2024, 1), as_file(month_table(1))),
        (Month(2024, 2), empty),
        (Month(2024, 3), MonthData.of_table(month_table(3))),
    ]
    df = both_ways(parts, "2024-01-01", "2024-03-31")
    assert len(df) == (31 + 31) * 24


@pytest.mark.parametrize(
    "case",
    [
        "nulls in an integer column",
        "nulls in a float column",
        "a string column",
        "bars out of order",
        "months overlap",
        "no rows",
    ],
)
def test_what_the_build_does_not_copy_goes_the_general_way(case):
    jan, feb = month_table(1), month_table(2)
    if case == "nulls in an integer column":
        feb = feb.set_column(3, "taker_buy_count", pa.array([None] + feb.column(3).to_pylist()[1:], type=pa.int64()))
    elif case == "nulls in a float column":
        feb = feb.set_column(1, "taker_buy_volume", pa.array([None] + feb.column(1).to_pylist()[1:], type=pa.float32()))
    elif case == "a string column":
        jan, feb = (t.append_column("note", pa.array(["x"] * t.num_rows)) for t in (jan, feb))
    elif case == "bars out of order":
        feb = feb.take(np.r_[1 : feb.num_rows, 0])
    elif case == "months overlap":  # February starts with a bar of January 5th
        feb = pa.concat_tables([jan.slice(100, 1), feb])
    else:
        jan, feb = jan.slice(0, 0), feb.slice(0, 0)
    parts = [(Month(2024, 1), as_file(jan)), (Month(2024, 2), as_file(feb))]
    query = make_query("binance-futures", "BTC", "1h", "2024-01-01", "2024-02-29")
    built = months_to_frame(parts, query)
    if case == "nulls in a float column":  # NaN in float columns: copied as they are
        assert built is not None and np.isnan(built["taker_buy_volume"].iloc[31 * 24])
        pd.testing.assert_frame_equal(built, table_to_frame(assemble([(m, p.table()) for m, p in parts], query)))
    else:
        assert built is None


def test_months_that_disagree_on_columns_fail_as_assemble_fails():
    feb = month_table(2).drop_columns(["flow_entropy"])
    parts = [(Month(2024, 1), as_file(month_table(1))), (Month(2024, 2), as_file(feb))]
    query = make_query("binance-futures", "BTC", "1h", "2024-01-01", "2024-02-29")
    with pytest.raises(SchemaError) as built:
        months_to_frame(parts, query)
    with pytest.raises(SchemaError) as stacked:
        assemble([(m, p.table()) for m, p in parts], query)
    assert str(built.value) == str(stacked.value)
    assert str(built.value) == "file for 2024-02 has other columns than 2024-01: missing ['flow_entropy'], unexpected none"


def test_a_month_kept_as_its_file_holds_the_file_and_decodes_to_the_same_table():
    table = month_table(1, "1m")
    part = as_file(table)
    assert part.raw is not None and part.nbytes == len(part.raw) < table.nbytes
    assert part.num_rows == table.num_rows and part.schema.names == table.schema.names
    assert part.table().equals(table)
    assert part.column("time").equals(table.column("time"))


def test_a_month_is_kept_in_the_smaller_of_its_two_forms():
    compressible = month_table(1)
    rng = np.random.default_rng(0)
    noise = pa.table({"time": compressible.column("time"), **{f"x{i}": rng.normal(size=744) for i in range(36)}})
    for table, kept_as in ((compressible, "file"), (noise, "table")):
        sink = io.BytesIO()
        pq.write_table(table, sink)
        raw = bytearray(sink.getvalue())
        kept = MonthData.kept(table, raw)
        assert ("file" if kept.raw is not None else "table") == kept_as
        assert kept.nbytes == min(len(raw), table.nbytes)
        # Read back from disk, a small file is decoded to compare; the smaller form stays.
        assert (MonthData.of_file(raw).smaller().raw is not None) == (kept_as == "file")


BUILD_PEAK = textwrap.dedent(
    """
    import io, json, sys
    import pyarrow as pa, pyarrow.parquet as pq
    from aperiodic_jupyter import make_query
    from aperiodic_jupyter.core.frame import months_to_frame
    from aperiodic_jupyter.core.parquet import MonthData
    from aperiodic_jupyter.core.ranges import Month
    from tests.server import synthetic_table

    def status(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) / 1024

    parts = []
    for m in range(1, 7):
        sink = io.BytesIO()
        pq.write_table(synthetic_table("flow", "binance-futures", "x", "1m", "exchange", 2024, m), sink)
        parts.append((Month(2024, m), MonthData.of_file(bytearray(sink.getvalue()))))
    query = make_query("binance-futures", "BTC", "1m", "2024-01-01", "2024-06-30")
    months_to_frame(parts[:1], make_query("binance-futures", "BTC", "1m", "2024-01-01", "2024-01-31"))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS")
    df = months_to_frame(parts, query)
    print(json.dumps({"grew": status("VmHWM") - before, "frame": df.memory_usage().sum() / 2**20}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak from /proc")
def test_building_a_frame_costs_about_the_frame_not_the_decoded_months_too():
    out = subprocess.run([sys.executable, "-c", BUILD_PEAK], capture_output=True, text=True, check=True, cwd=str(_root()))
    result = pd.read_json(io.StringIO(out.stdout.strip().splitlines()[-1]), typ="series")
    # Decoding the six months whole, then converting, needs the frame plus every decoded
    # month (2× the frame); month by month it needs the frame plus about one piece.
    assert result["grew"] < 1.3 * result["frame"], result.to_dict()


def _root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


def test_with_pandas_2_the_frame_has_a_block_per_column_and_is_the_same(monkeypatch):
    parts = [(Month(2024, m), as_file(month_table(m))) for m in (1, 2)]
    query = make_query("binance-futures", "BTC", "1h", "2024-01-10", "2024-02-29")
    consolidated = months_to_frame(parts, query)
    monkeypatch.setitem(sys.modules, "pandas.api.internals", None)  # as pandas 2, which lacks it
    split = months_to_frame(parts, query)
    assert consolidated is not None and split is not None
    pd.testing.assert_frame_equal(split, consolidated)
    split.loc[0, "taker_buy_count"] = -1
    assert split.loc[0, "taker_buy_count"] == -1


def test_booleans_and_narrow_integers_are_copied_as_to_pandas_makes_them():
    def with_flags(m: int) -> pa.Table:
        table = month_table(m)
        flags = pa.array(np.arange(table.num_rows) % 3 == 0)
        small = pa.array((np.arange(table.num_rows) % 100).astype(np.int8))
        return table.append_column("flag", flags).append_column("small", small)

    df = both_ways([(Month(2024, m), as_file(with_flags(m))) for m in (1, 2)], "2024-01-20", "2024-02-10")
    assert str(df["flag"].dtype) == "bool" and str(df["small"].dtype) == "int8"


def test_months_added_in_any_order_with_a_short_month_between_give_the_stacked_frame():
    from aperiodic_jupyter.core.frame import FrameBuilder

    jan, feb, mar = month_table(1), month_table(2), month_table(3)
    feb = feb.slice(24, 10 * 24)  # a short month: its slot is closed up at the end
    query = make_query("binance-futures", "BTC", "1h", "2024-01-10", "2024-03-31")
    builder = FrameBuilder(query)
    builder.add_table(Month(2024, 3), mar)  # downloads finish in any order
    builder.add(Month(2024, 2), as_file(feb))
    builder.add_table(Month(2024, 1), jan)
    df = builder.frame()
    assert df is not None
    expected = table_to_frame(assemble([(Month(2024, 1), jan), (Month(2024, 2), feb), (Month(2024, 3), mar)], query))
    pd.testing.assert_frame_equal(df, expected)
    df.loc[0, "taker_buy_count"] = -1  # the caller's own, as always
    assert df.loc[0, "taker_buy_count"] == -1


def test_a_month_with_more_bars_than_its_days_hold_goes_the_general_way():
    from aperiodic_jupyter.core.frame import FrameBuilder

    jan = month_table(1)
    twice = pa.concat_tables([jan, jan]).sort_by("time")  # bars twice: more than 31 × 24
    query = make_query("binance-futures", "BTC", "1h", "2024-01-01", "2024-01-31")
    builder = FrameBuilder(query)
    builder.add_table(Month(2024, 1), twice)
    assert not builder.ok and builder.frame() is None
    assert months_to_frame([(Month(2024, 1), MonthData.of_table(twice))], query) is None


@pytest.mark.parametrize(("start", "end"), [("2024-01-01", "2024-03-31"), ("2024-01-15", "2024-03-10")])
def test_small_months_kept_as_tables_are_stacked_at_once_and_match(start, end):
    from aperiodic_jupyter.core.frame import small_frame

    parts = [(Month(2024, m), MonthData.of_table(month_table(m))) for m in (1, 2, 3)]
    query = make_query("binance-futures", "BTC", "1h", start, end)
    df = small_frame(parts, query)
    assert df is not None
    pd.testing.assert_frame_equal(df, table_to_frame(assemble([(m, p.table()) for m, p in parts], query)))
    assert small_frame([(m, as_file(p.table())) for m, p in parts], query) is None  # files: the builder's
