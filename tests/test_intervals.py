"""15-second and 30-second bars, everywhere intervals are accepted."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from IPython.core.completer import provisionalcompleter
from IPython.core.interactiveshell import InteractiveShell

import aperiodic_jupyter as aj
from aperiodic_jupyter import Client
from aperiodic_jupyter.core.cache import MemoryCache
from aperiodic_jupyter.jupyter.charts import chart_frame, flow_chart
from aperiodic_jupyter.jupyter.explorer import FlowExplorer


@pytest.fixture(scope="module")
def month_of_15s():
    with Client("demo", cache_dir=False, memory_cache=MemoryCache()) as client:
        return client.get_flow("binance", "BTC", "15s", "2024-01", progress=False)


def test_a_month_of_15s_bars_from_the_demo(month_of_15s):
    df = month_of_15s
    assert len(df) == 31 * 24 * 60 * 4 == 178_560
    assert (df["time"].diff().dropna().dt.total_seconds() == 15).all()
    assert df.attrs["query"]["interval"] == "15s" and df.attrs["simulated"]


def test_30s_bars_add_up_to_the_1m_bars_of_the_same_tape():
    with Client("demo", cache_dir=False, memory_cache=MemoryCache()) as client:
        fine = client.get_flow("binance", "ETH", "30s", "2024-02-01", progress=False)
        coarse = client.get_flow("binance", "ETH", "1m", "2024-02-01", progress=False)
    summed = fine.set_index("time")[["taker_buy_volume", "taker_buy_count"]].resample("1min").sum()
    assert summed["taker_buy_count"].tolist() == coarse["taker_buy_count"].tolist()
    assert np.allclose(summed["taker_buy_volume"], coarse["taker_buy_volume"], rtol=1e-5)


def test_the_chart_of_a_15s_month_is_aggregated_below_one_megabyte(month_of_15s):
    small, agg = chart_frame(month_of_15s)
    assert agg == "30m" and len(small) <= 2500
    one_day = month_of_15s[month_of_15s["time"] < month_of_15s["time"].iloc[0] + pd.Timedelta("1D")]
    assert chart_frame(one_day)[1] == "1m"  # 5,760 bars of 15s: the next finer interval that fits
    spec = flow_chart(month_of_15s).to_dict()
    assert len(json.dumps(spec)) < 1_000_000


def test_every_front_end_offers_the_short_intervals():
    assert aj.INTERVALS[:2] == ("15s", "30s")
    assert FlowExplorer().selector.intervals[:2] == ["15s", "30s"]
    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext aperiodic_jupyter", store_history=False)
    with provisionalcompleter():
        got = {c.text for c in shell.Completer.completions("%flow binance BTC ", 18)}
    assert {"15s", "30s"} <= got
    df = aj.get_flow("okx", "BTC", "30s", "2024-01-01", source="demo", progress=False)
    assert len(df) == 2880


def test_a_plan_without_short_bars_is_one_line_that_names_the_plan(api, make_client):
    api.inject("list", status=403, times=5)
    client = make_client(api)
    with pytest.raises(aj.PlanError) as err:
        client.get_flow("binance", "BTC", "15s", "2024-01-01")
    text = str(err.value)
    assert text.startswith("15s bars need a higher Aperiodic plan; your plan does not cover this request (403)")
    assert "\n" not in text
    with pytest.raises(aj.PlanError) as err:
        client.get_flow("binance", "BTC", "1h", "2024-01-01")
    assert str(err.value).startswith("your plan does not cover this request (403)")

