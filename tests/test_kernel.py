"""The magic in a real kernel: a notebook executed with nbclient, and completion replies."""

from __future__ import annotations

import json

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient

from .server import API_KEY, FakeApi


def notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    return nb


def outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
        elif out.get("output_type") == "error":
            parts.append("\n".join(out["traceback"]))
    return "".join(parts)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    cache = tmp_path_factory.mktemp("kernel-cache")
    with FakeApi() as api:
        nb = notebook(
            "%load_ext aperiodic_jupyter",
            "df = %flow binance BTC 1h 2024-01..2024-02 -s demo\nlen(df), type(df).__name__, df.attrs['simulated']",
            "%flow binance BTC 1h 2024-01 -s demo -o flows",
            "len(flows)",
            "%flow binance BTCC 1h 2024-01",
            "%config Aperiodic",
            "real = %flow binance ETH 1h 2024-01 -s api\nlen(real), real.attrs['source']",
            "%flow binance ETH 1h 2024-01 -s api",
        )
        client = NotebookClient(
            nb,
            timeout=180,
            kernel_name="python3",
            allow_errors=True,
        )
        env = {"APERIODIC_API_KEY": API_KEY, "APERIODIC_API_URL": api.base_url, "APERIODIC_CACHE_DIR": str(cache)}
        client.execute(env=env)
        yield nb, api


def result_text(cell) -> str:
    return "".join(out["data"]["text/plain"] for out in cell.outputs if out.get("output_type") == "execute_result")


def test_variable_capture_in_a_kernel(executed):
    nb, _ = executed
    assert result_text(nb.cells[1]) == "(1440, 'DataFrame', True)"
    assert result_text(nb.cells[3]) == "744"


def test_the_view_is_a_widget_with_its_summary(executed):
    nb, _ = executed
    mimes = [set(out.get("data", {})) for out in nb.cells[2].outputs]
    assert any("application/vnd.jupyter.widget-view+json" in m for m in mimes)


def test_a_bad_line_is_one_line_in_a_kernel(executed):
    nb, _ = executed
    text = outputs_text(nb.cells[4]).strip()
    assert text.startswith("UsageError: unknown symbol 'BTCC'") and "\n" not in text
    assert "Traceback" not in text


def test_the_api_through_the_kernel_and_the_key_nowhere_in_the_notebook(executed):
    nb, api = executed
    assert result_text(nb.cells[6]) == "(744, 'api')"
    assert api.received_keys and set(api.received_keys) == {API_KEY}
    saved = json.dumps(nb)
    assert API_KEY not in saved
    assert "X-Amz-Signature" not in saved


def test_completion_replies_from_a_real_kernel():
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        kc.execute_interactive("%load_ext aperiodic_jupyter", timeout=60)
        for code, expected in [
            ("%flow binan", {"binance", "binance-futures"}),
            ("%flow binance-futures BT", {"BTC"}),
            ("%flow binance BTC ", {"1h", "1m", "1d"}),
            ("%flow binance BTC 1h 2024-01 --no-", {"--no-cache", "--no-chart"}),
        ]:
            reply = kc.complete(code, len(code), reply=True, timeout=30)
            assert expected <= set(reply["content"]["matches"]), (code, reply["content"]["matches"][:10])
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
