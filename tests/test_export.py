"""PNG and SVG exports without a browser: the headless path from Python (vl-convert, the
``export`` extra), the one line it says when the extra is missing, and the kernel's side
of an image the page rendered (js/chart_view.js) and sent to be written."""

from __future__ import annotations

import struct
import sys
import tomllib
import zlib
from pathlib import Path

import pandas as pd
import pytest

from aperiodic_jupyter import AperiodicError, Client
from aperiodic_jupyter.core.cache import MemoryCache
from aperiodic_jupyter.jupyter.export import EXTRA_MISSING, ExportExtraMissing, chart_png, chart_svg
from aperiodic_jupyter.jupyter.panel import FlowPanel

ROOT = Path(__file__).resolve().parents[1]
STEM = "binance-futures_perpetual-BTC-USDT-USDT_1h_2024-01-01_2024-01-07"
TITLE = "binance-futures perpetual-BTC-USDT:USDT 1h"


@pytest.fixture(scope="module")
def week():
    with Client("demo", cache_dir=False, memory_cache=MemoryCache()) as client:
        return client.get_flow("binance-futures", "BTC", "1h", "2024-01-01..2024-01-07")


@pytest.fixture
def panel(week, monkeypatch, tmp_path):
    """A flow panel whose kernel folder is ``tmp_path``, and what it sends to the page."""
    monkeypatch.chdir(tmp_path)
    p = FlowPanel(week, namespace={})
    p.sent = []  # type: ignore[attr-defined]
    monkeypatch.setattr(p, "send", lambda content, buffers=None: p.sent.append((content, buffers)))
    return p


def no_vl_convert(monkeypatch) -> None:
    """As in an install without the ``export`` extra: ``import vl_convert`` fails."""
    monkeypatch.setitem(sys.modules, "vl_convert", None)


def tiny_png(width: int = 3, height: int = 2) -> bytes:
    """A real PNG (RGB, every pixel red), built by hand: what ``view.toImageURL`` gives
    the page, in small."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


# -- from Python, with vl-convert -------------------------------------------------------------


def test_png_and_svg_from_python_with_vl_convert(panel, tmp_path):
    png, name, mime = panel.export_bytes("png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000 and mime == "image/png"
    assert name == f"{STEM}.png"
    svg = chart_svg(panel.spec).decode()
    assert svg.lstrip().startswith("<svg") and TITLE in svg and "SIMULATED" in svg
    path = panel.save("svg", folder=tmp_path)
    assert path == (tmp_path / f"{STEM}.svg").resolve() and path.read_bytes().lstrip().startswith(b"<svg")
    assert chart_png(panel.spec.to_dict(), scale=1.0)[:4] == b"\x89PNG"  # a spec dict works too


# -- from Python, without it -----------------------------------------------------------------


def test_without_the_extra_png_and_svg_say_so_in_one_line(panel, monkeypatch, tmp_path):
    no_vl_convert(monkeypatch)
    assert EXTRA_MISSING == (
        "PNG/SVG from Python needs the export extra: pip install 'aperiodic-jupyter[export]' "
        "(the chart's PNG and SVG buttons work without it)"
    )
    for fmt in ("png", "svg"):
        with pytest.raises(ExportExtraMissing) as info:
            panel.export_bytes(fmt)
        assert str(info.value) == EXTRA_MISSING and "\n" not in str(info.value)
        assert info.value.__cause__ is None and info.value.__suppress_context__  # no traceback chain
        with pytest.raises(ExportExtraMissing):
            panel.save(fmt)
    assert isinstance(info.value, AperiodicError) and isinstance(info.value, ImportError)
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    # The data exports need no extra.
    assert panel.export_bytes("csv")[0].startswith(b"time,")
    # A PNG asked of the kernel by message says the same line in the export bar.
    panel._handle_custom_msg({"type": "export", "format": "png", "scope": "full", "dest": "file"}, [])
    assert panel.sent[-1] == ({"type": "status", "text": f"error: {EXTRA_MISSING}"}, None)


def test_the_package_imports_and_draws_without_vl_convert(week, monkeypatch):
    no_vl_convert(monkeypatch)
    p = FlowPanel(week, namespace={})
    assert p.charts == 1 and p.file_stems == {"full": STEM}


# -- an image the page rendered, written by the kernel ------------------------------------------


def test_an_image_the_page_rendered_is_written_into_the_kernels_folder(panel, tmp_path, monkeypatch):
    no_vl_convert(monkeypatch)  # the page renders: the kernel needs no vl-convert for this
    png = tiny_png()
    # Exactly what js/chart_view.js sends in "save to kernel folder" mode; ipywidgets
    # hands the buffers over as memoryviews.
    for _ in range(2):
        panel._handle_custom_msg({"type": "image", "format": "png", "scope": "full"}, [memoryview(png)])
    first, second = tmp_path / f"{STEM}.png", tmp_path / f"{STEM}-1.png"
    assert {p.name for p in tmp_path.iterdir()} == {first.name, second.name}  # no temporary file left
    assert first.read_bytes() == png and second.read_bytes() == png
    assert panel.sent[-1] == ({"type": "status", "text": f"saved {second.resolve()} ({len(png):,} bytes)"}, None)


def test_a_rendered_svg_of_the_brush_is_named_by_the_brush(panel, tmp_path):
    lo, hi = pd.Timestamp("2024-01-03", tz="UTC"), pd.Timestamp("2024-01-04 11:00", tz="UTC")
    panel.set_state({"brush": [lo.value // 10**6, hi.value // 10**6]})  # the page's drag
    brush_stem = "binance-futures_perpetual-BTC-USDT-USDT_1h_20240103T0000-20240104T1100"
    assert panel.file_stems == {"full": STEM, "brush": brush_stem}  # what the page names downloads with
    svg = f'<svg xmlns="http://www.w3.org/2000/svg"><text>{TITLE}</text></svg>'.encode()
    panel._handle_custom_msg({"type": "image", "format": "svg", "scope": "brush"}, [svg])
    assert (tmp_path / f"{brush_stem}.svg").read_bytes() == svg
    panel.set_state({"brush": []})
    assert panel.file_stems == {"full": STEM}


@pytest.mark.parametrize(
    ("content", "buffers", "error"),
    [
        ({"type": "image", "format": "png"}, [b"<svg></svg>"], "error: the page sent no PNG image (11 bytes)"),
        ({"type": "image", "format": "svg"}, [b"\x89PNG\r\n\x1a\n"], "error: the page sent no SVG image (8 bytes)"),
        ({"type": "image", "format": "png"}, [], "error: the page sent no PNG image"),
        ({"type": "image", "format": "csv"}, [b"time,x\n"], "error: not an image format: 'csv'; valid: png, svg"),
    ],
)
def test_what_is_no_image_is_refused_in_one_line_and_not_written(panel, tmp_path, content, buffers, error):
    panel._handle_custom_msg(content, buffers)
    assert panel.sent[-1] == ({"type": "status", "text": error}, None)
    assert list(tmp_path.iterdir()) == []


# -- packaging -----------------------------------------------------------------------------


def test_vl_convert_is_the_export_extra_and_the_tests_install_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert not [d for d in project["dependencies"] if d.startswith("vl-convert")]
    assert extras["export"] == ["vl-convert-python>=1.6"]
    assert "vl-convert-python>=1.6" in extras["test"]
    assert "vl-convert" not in (ROOT / "binder" / "requirements.txt").read_text()
