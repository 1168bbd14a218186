"""The charts' specs are built without Altair checking their rows, and read the same.

Issue 14: Altair validated every row of a chart when ``flow_chart`` gave them with
``.properties`` and again in ``to_dict`` (seconds for a year of 1-minute bars), and the
page formatted every tooltip and ARIA description of every item on each brush move.
How long things take is measured in ``benchmarks/browser_bench.py``; these tests check
what is built: no row passes through Altair's checks or its walk, the spec is the one
Altair's own ``to_dict`` gives, and tooltips are text looked up, not formatted per item.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import altair as alt
import pandas as pd
import pytest
from altair.utils import schemapi

from aperiodic_jupyter.jupyter.charts import TIP_TIME_FORMAT, LinkedViews, flow_chart
from aperiodic_jupyter.jupyter.compare_chart import venue_chart

#: Keys only a chart row has: the flow chart's (``time``, ``buy``) and the venue view's (``t``, ``v``).
_ROW_KEYS = ({"time", "buy"}, {"t", "v", "dn"})


@pytest.fixture(scope="module")
def week(demo) -> pd.DataFrame:
    return demo.get_flow("binance-futures", "BTC", "1h", "2024-01-01..2024-01-07", with_price=True)


@pytest.fixture(scope="module")
def venues(demo) -> pd.DataFrame:
    return demo.get_flow(["binance-futures", "okx-perps"], "BTC", "1h", "2024-01-01..2024-01-07", with_price=True)


def _rows_in(value: Any) -> int:
    """How many chart rows ``value`` holds, at any depth."""
    if isinstance(value, dict):
        own = any(keys <= value.keys() for keys in _ROW_KEYS)
        return int(own) + sum(_rows_in(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_rows_in(v) for v in value)
    return 0


@pytest.fixture()
def altair_sees(monkeypatch) -> dict[str, int]:
    """Counts the chart rows Altair validates (``validate_jsonschema``) and walks
    (``_todict``, called once per value it converts, rows included)."""
    seen = {"validated": 0, "walked": 0}
    validate, todict = schemapi.validate_jsonschema, schemapi._todict

    def counted_validate(instance: Any, *args: Any, **kwargs: Any) -> Any:
        seen["validated"] += _rows_in(instance)
        return validate(instance, *args, **kwargs)

    def counted_todict(obj: Any, *args: Any, **kwargs: Any) -> Any:
        seen["walked"] += int(isinstance(obj, dict) and any(keys <= obj.keys() for keys in _ROW_KEYS))
        return todict(obj, *args, **kwargs)

    monkeypatch.setattr(schemapi, "validate_jsonschema", counted_validate)
    monkeypatch.setattr(schemapi, "_todict", counted_todict)
    return seen


CHARTS: dict[str, Callable[[pd.DataFrame], LinkedViews]] = {
    "flow": lambda df: flow_chart(df, panels="all"),
    "venues": venue_chart,
}


@pytest.mark.parametrize("kind", CHARTS)
def test_to_dict_is_altairs_own_dict(kind, week, venues):
    chart = CHARTS[kind](week if kind == "flow" else venues)
    assert isinstance(chart, LinkedViews)
    ours, altairs = chart.to_dict(), alt.VConcatChart.to_dict(chart)
    assert ours == altairs
    assert len(ours["datasets"]["flow" if kind == "flow" else "venues"]) > 100
    assert json.loads(chart.to_json()) == altairs


def test_the_rows_are_fresh_and_the_chart_keeps_its_own(week):
    chart = flow_chart(week)
    spec = chart.to_dict()
    spec["datasets"]["flow"][0]["buy"] = -1.0
    spec["datasets"]["flow"].clear()
    assert chart.to_dict() == alt.VConcatChart.to_dict(chart)


def test_the_vega_spec_is_altairs_own(week):
    chart = flow_chart(week)
    assert chart.to_dict(format="vega") == alt.VConcatChart.to_dict(chart, format="vega")


@pytest.mark.parametrize("kind", CHARTS)
def test_no_row_is_validated_or_walked_by_altair(kind, week, venues, altair_sees):
    frame = week if kind == "flow" else venues
    chart = CHARTS[kind](frame)
    spec = chart.to_dict()
    assert _rows_in(spec["datasets"]) > 100
    assert altair_sees == {"validated": 0, "walked": 0}
    # The counting sees rows where Altair is given them as before issue 14: each is
    # checked and walked by .properties, then again by to_dict.
    bare = chart.copy(deep=False)
    bare.datasets = alt.Undefined
    alt.VConcatChart.to_dict(bare.properties(datasets=spec["datasets"]))
    rows = _rows_in(spec["datasets"])
    assert altair_sees["validated"] >= 2 * rows and altair_sees["walked"] >= 2 * rows


def _units(spec: Any) -> list[dict[str, Any]]:
    """Every single-mark view of a spec, wherever it is nested."""
    if isinstance(spec, list):
        return [u for v in spec for u in _units(v)]
    if not isinstance(spec, dict):
        return []
    own = [spec] if "mark" in spec else []
    return own + [u for k, v in spec.items() if k != "datasets" for u in _units(v)]


@pytest.mark.parametrize("kind", CHARTS)
def test_tooltips_are_text_looked_up_not_formatted_per_item(kind, week, venues):
    spec = CHARTS[kind](week if kind == "flow" else venues).to_dict()
    tipped = [u for u in _units(spec) if "tooltip" in u.get("encoding", {})]
    assert len(tipped) >= (7 if kind == "flow" else 4)
    calcs = {t["as"]: t["calculate"] for u in _units(spec) for t in u.get("transform", []) if "calculate" in t}
    for unit in tipped:
        tips = unit["encoding"]["tooltip"]
        assert tips[0] == {"field": "tip_time", "title": "bar start (UTC)", "type": "nominal"}
        assert calcs["tip_time"].endswith(f'"{TIP_TIME_FORMAT}")')
        for tip in tips:
            # Text: nothing for the mark to format (no format, no time unit, no number).
            assert tip["type"] == "nominal" and "format" not in tip and "timeUnit" not in tip
            if tip["field"].startswith("tip_"):
                assert calcs[tip["field"]].startswith(("format(datum[", "utcFormat(datum["))


def test_tooltips_keep_their_titles_and_formats(week):
    spec = flow_chart(week, panels="all").to_dict()
    delta = next(u for u in _units(spec) if u.get("title", "").startswith("Volume delta per bar"))
    assert [t["title"] for t in delta["encoding"]["tooltip"]] == ["bar start (UTC)", "volume delta (base)"]
    assert {"calculate": 'format(datum["delta"], ",.4f")', "as": "tip_delta"} in delta["transform"]


@pytest.mark.parametrize("kind", CHARTS)
def test_every_mark_has_one_fixed_aria_description(kind, week, venues):
    spec = CHARTS[kind](week if kind == "flow" else venues).to_dict()
    description = spec["config"]["mark"]["description"]
    assert description.startswith(spec["title"]["text"]) and "tooltip" in description
    assert not any("description" in u.get("encoding", {}) for u in _units(spec))
