"""Partial data is never silent: a user's session with get_flow and %flow.

The venue lists carry each contract's capture dates. A range wholly outside them is one
clear line before anything is downloaded; a range that is only partly covered says
what it covers in ``df.attrs``, the summary line and the chart subtitle; a fully
covered range says nothing extra.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

import aperiodic_jupyter as aj
from aperiodic_jupyter import NoDataError
from aperiodic_jupyter.core.coverage import coverage
from aperiodic_jupyter.core.query import make_query
from aperiodic_jupyter.core.sources.demo import DEMO_LABEL, DemoSource
from aperiodic_jupyter.jupyter.charts import flow_chart
from aperiodic_jupyter.jupyter.panel import FlowPanel, summary_line

BEFORE_LISTING = (
    "no data for perpetual-BTC-USDT:USDT on binance-futures before 2019-11-17 (first capture); "
    "the range 2018-01-01..2018-01-31 ends before it"
)
ETH_NOTE = (
    "data covers 2024-10-29..2024-12-31 of 2024-01-01..2024-12-31: "
    "hyperliquid-perps captures perpetual-ETH-USDC:USDC from 2024-10-29"
)


@pytest.fixture
def downloads(monkeypatch):
    """Every month the demo source is asked for, in order."""
    asked: list[str] = []
    real = DemoSource.fetch_months

    def counting(self, query, months, on_month):
        asked.extend(str(m) for m in months)
        return real(self, query, months, on_month)

    monkeypatch.setattr(DemoSource, "fetch_months", counting)
    return asked


def subtitle(df) -> list[str]:
    return list(flow_chart(df).to_dict()["title"].get("subtitle", []))


# -- get_flow -----------------------------------------------------------------------------


def test_a_range_before_the_first_capture_is_one_line_and_downloads_nothing(downloads):
    with pytest.raises(NoDataError) as err:
        aj.get_flow("binance", "BTC", "1h", "2018-01", source="demo", progress=False)
    assert str(err.value) == BEFORE_LISTING
    assert downloads == []


def test_the_api_source_is_not_asked_either(api, make_client):
    client = make_client(api)
    with pytest.raises(NoDataError, match="before 2019-11-17 \\(first capture\\)"):
        client.get_flow("binance-futures", "BTC", "1h", "2018-01")
    with pytest.raises(NoDataError, match="before 2019-11-17"):
        client.plan(make_query("binance-futures", "BTC", "1h", "2018-01"))  # --dry-run says it too
    assert api.counts["total"] == 0


def test_a_range_after_a_delisting_is_one_line_too(downloads):
    with pytest.raises(NoDataError) as err:
        aj.get_flow("binance", "1000BTTC", "1d", "2022-05", source="demo", progress=False)
    assert str(err.value) == (
        "no data for perpetual-1000BTTC-USDT:USDT on binance-futures after 2022-04-12 (last capture); "
        "the range 2022-05-01..2022-05-31 starts after it"
    )
    assert downloads == []


def test_a_range_that_starts_before_the_first_capture_says_what_it_covers():
    df = aj.get_flow("hyperliquid", "ETH", "1d", "2024", source="demo", progress=False)
    assert len(df) == 64
    assert df.attrs["coverage"] == {
        "asked": ["2024-01-01", "2024-12-31"],
        "covered": ["2024-10-29", "2024-12-31"],
        "listed": ["2024-10-29", None],
        "complete": False,
        "note": ETH_NOTE,
        "summary": "covers 2024-10-29..2024-12-31 only (first capture 2024-10-29)",
    }
    line = summary_line(df)
    assert "2024-01-01..2024-12-31 UTC · 64 rows · covers 2024-10-29..2024-12-31 only (first capture 2024-10-29) · " in line
    assert ETH_NOTE in subtitle(df)


def test_a_range_that_ends_after_a_delisting_says_so():
    df = aj.get_flow("binance", "1000BTTC", "1h", "2022-04", source="demo", progress=False)
    cov = df.attrs["coverage"]
    assert cov["complete"] is False and cov["covered"] == ["2022-04-01", "2022-04-12"]
    assert cov["note"] == (
        "data covers 2022-04-01..2022-04-12 of 2022-04-01..2022-04-30: "
        "binance-futures captured perpetual-1000BTTC-USDT:USDT until 2022-04-12"
    )
    assert "covers 2022-04-01..2022-04-12 only (last capture 2022-04-12)" in summary_line(df)


def test_a_fully_covered_range_says_nothing_extra():
    df = aj.get_flow("binance", "BTC", "1h", "2024-01", source="demo", progress=False, with_price=True)
    assert df.attrs["coverage"]["complete"] is True and df.attrs["coverage"]["note"] == ""
    assert df.attrs["coverage"]["covered"] == ["2024-01-01", "2024-01-31"]
    assert "covers" not in summary_line(df)
    assert subtitle(df) == [DEMO_LABEL]


@pytest.mark.parametrize("interval", ["1h", "1d"])
def test_a_range_ending_today_is_complete_at_the_last_complete_bar(interval):
    # Today's bars are still coming (a 1d range has none yet): not a gap.
    df = aj.get_flow("binance", "BTC", interval, "7d", source="demo", progress=False)
    assert df.attrs["coverage"]["complete"] is True, df.attrs["coverage"]
    assert "covers" not in summary_line(df)


def test_day_granularity_and_today():
    today = date(2026, 11, 26)
    q = make_query("binance-futures", "BTC", "1h", "2026-11-20..2026-11-26", today=today)
    at = lambda *a: datetime(*a, tzinfo=UTC)  # noqa: E731
    # Through yesterday is enough for a range that ends today...
    assert coverage(q, at(2026, 11, 20), at(2026, 11, 25, 23), today=today).complete
    # ...but not three days short of it.
    short = coverage(q, at(2026, 11, 20), at(2026, 11, 23, 23), today=today)
    assert not short.complete
    assert short.note == "data covers 2026-11-20..2026-11-23 of 2026-11-20..2026-11-26: the source has no bars after 2026-11-23"
    # A range of today alone has nothing due yet, so no rows is no gap.
    assert coverage(make_query("binance-futures", "BTC", "1h", "today", today=today), None, None, today=today).complete
    # A gap the listing does not explain is described by where the bars are.
    old = make_query("binance-futures", "BTC", "1h", "2024-01", today=today)
    assert coverage(old, None, None, today=today).note == "no data in 2024-01-01..2024-01-31: the source has no bars there"
    late = coverage(old, at(2024, 1, 3), at(2024, 1, 31, 23), today=today)
    assert late.summary == "covers 2024-01-03..2024-01-31 only"


# -- the %flow magic, in a real IPython shell --------------------------------------------


def test_magic_before_the_first_capture_is_one_usage_error_line(ip, capsys, downloads):
    result = ip.run_cell("%flow binance BTC 1h 2018-01", store_history=True)
    assert not result.success
    err = capsys.readouterr()
    text = (err.out + err.err).strip()
    assert text == f"UsageError: {BEFORE_LISTING}"
    assert ip.shown == [] and downloads == []


def test_magic_partial_range_says_what_it_covers(ip):
    result = ip.run_cell("%flow hyperliquid ETH 1d 2024", store_history=True)
    assert result.success
    (panel,) = ip.shown
    assert isinstance(panel, FlowPanel)
    assert "64 rows · covers 2024-10-29..2024-12-31 only (first capture 2024-10-29)" in panel.summary
    assert "covers 2024-10-29..2024-12-31 only" in repr(panel)
    assert ETH_NOTE in panel.spec.to_dict()["title"]["subtitle"]


def test_magic_fully_covered_range_says_nothing_extra(ip):
    ip.run_cell("df = %flow binance BTC 1h 2024-01", store_history=True)
    df = ip.user_ns["df"]
    assert df.attrs["coverage"]["complete"] is True
    assert "covers" not in summary_line(df)


def test_the_command_line_says_what_it_covers_and_refuses_a_range_before_listing(capsys):
    from aperiodic_jupyter.__main__ import main

    assert main(["hl", "ETH", "1d", "2024", "--source", "demo"]) == 0
    out = capsys.readouterr().out
    assert "data covers 2024-10-29..2024-12-31 of 2024-01-01..2024-12-31" in out
    assert main(["binance", "BTC", "1h", "2018-01", "--source", "demo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no data for perpetual-BTC-USDT:USDT on binance-futures before") and "\n" not in err
