"""The flow panel's text form: what a terminal, a saved notebook or nbconvert shows
where the widget cannot be drawn. It is the summary line, whole."""

from __future__ import annotations

from IPython.core.interactiveshell import InteractiveShell

import aperiodic_jupyter as aj
from aperiodic_jupyter.jupyter.panel import FlowPanel, summary_line


def test_text_plain_is_the_whole_summary_line():
    df = aj.get_flow("hyperliquid", "ETH", "1d", "2024", source="demo", progress=False)
    panel = FlowPanel(df)
    line = summary_line(df)
    assert len(line) > 110  # longer than ipywidgets' cut of a repr
    assert repr(panel) == line
    data, _metadata = panel._repr_mimebundle_()
    assert data["text/plain"] == line
    assert "application/vnd.jupyter.widget-view+json" in data  # still a live widget
    # What IPython stores in a notebook's output for display(panel).
    data, _ = InteractiveShell.instance().display_formatter.format(panel)
    assert data["text/plain"] == line and "FlowPanel(" not in data["text/plain"]
