"""The preview: real data with no account, labelled as such, and one line outside it."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

import aperiodic_jupyter as aj
import aperiodic_jupyter.jupyter.magic as magic_module
from aperiodic_jupyter import Client, PreviewError
from aperiodic_jupyter.core.cache import MemoryCache
from aperiodic_jupyter.core.sources.preview import PREVIEW_LABEL
from aperiodic_jupyter.jupyter.charts import flow_chart
from aperiodic_jupyter.jupyter.panel import summary_line

from .server import API_KEY, PREVIEW_KEY


@pytest.fixture
def preview(api, tmp_path):
    client = Client("preview", base_url=api.base_url, cache_dir=tmp_path / "cache", memory_cache=MemoryCache(), backoff=0.01)
    yield client
    client.close()


def test_real_data_with_no_key_is_labelled_preview(api, preview, monkeypatch):
    monkeypatch.setenv("APERIODIC_API_KEY", API_KEY)  # the user's key exists, and is never sent
    df = preview.get_flow("binance", "BTC", "1h", "2025-06")
    assert len(df) == 30 * 24 and df.attrs["source"] == "preview" and df.attrs["simulated"] is False
    assert df.attrs["label"] == PREVIEW_LABEL == "Aperiodic preview: real market data, limited slice"
    assert set(api.received_keys) == {PREVIEW_KEY}
    assert PREVIEW_LABEL in summary_line(df)
    assert PREVIEW_LABEL in flow_chart(df, panels="delta").to_dict()["title"]["subtitle"]
    assert "SIMULATED" not in summary_line(df)


def test_preview_months_have_their_own_cache_namespace(api, preview, tmp_path):
    preview.get_flow("binance", "BTC", "1d", "2025-06")
    assert set(preview.cache.info()["source"]) == {f"preview-{api.base_url.split('//')[1].split('/')[0].replace(':', '_')}"}
    with Client("api", api_key=API_KEY, base_url=api.base_url, cache_dir=tmp_path / "cache", memory_cache=MemoryCache()) as mine:
        assert mine.plan(aj.make_query("binance", "BTC", "1d", "2025-06"))["cached"].tolist() == ["no"]


def test_outside_the_slice_is_one_line_that_says_how_to_get_a_key(preview):
    with pytest.raises(PreviewError) as err:
        preview.get_flow("binance", "ETH", "1h", "2025-06")
    text = str(err.value)
    assert text.startswith("the Aperiodic preview does not cover flow perpetual-ETH-USDT:USDT on binance-futures, 1h")
    assert "outside the preview whitelist" in text and "APERIODIC_API_KEY" in text and "\n" not in text
    with pytest.raises(PreviewError):
        preview.get_flow("binance", "BTC", "1h", "2024-01")


def test_the_preview_never_takes_the_users_key():
    with pytest.raises(aj.QueryError, match="the preview uses the shared public key, never yours"):
        Client("preview", api_key="mine")


def test_preview_from_the_magic_and_its_refusal_in_one_line(api, monkeypatch, capsys):
    monkeypatch.setenv("APERIODIC_API_URL", api.base_url)
    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext aperiodic_jupyter", store_history=False)
    shown: list = []
    monkeypatch.setattr(magic_module, "display", lambda obj: shown.append(obj))
    assert shell.run_cell("%flow binance BTC 1h 2025-06-01..2025-06-03 -s preview -p delta,cvd", store_history=False).success
    (panel,) = shown
    assert PREVIEW_LABEL in repr(panel)  # the summary line
    capsys.readouterr()
    result = shell.run_cell("%flow binance ETH 1h 2025-06 -s preview", store_history=False)
    out = capsys.readouterr()
    text = (out.out + out.err).strip()
    assert not result.success and text.startswith("UsageError: the Aperiodic preview does not cover") and "\n" not in text


def test_the_explorer_offers_the_preview():
    from aperiodic_jupyter.jupyter.explorer import FlowExplorer

    assert "preview" in FlowExplorer().selector.sources
