"""The flow panel: summary line, linked Altair views and export buttons for one frame.

Both front ends show exactly this (the ``%flow`` magic, ``aperiodic_jupyter.flow(...)``
and, inside itself, the explorer), so it is built once: one anywidget
(:class:`~.chart_widget.ChartWidget`; its page code is ``js/chart_view.js``). Vega and
that code come from the package itself, once per page (:mod:`.vega_library`): no CDN.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .chart_widget import ChartWidget
from .charts import MAX_POINTS, parse_panels
from .summary import summary_line
from .vega_library import esm, js_path

__all__ = ["FlowPanel", "summary_line", "js_path"]


class FlowPanel(ChartWidget):
    """Summary, linked views and export buttons for one frame.

    Args:
        df: the frame to show (a flow frame; several venues or symbols are drawn as the
            comparison view).
        panels: the panels to draw (names from
            ``aperiodic_jupyter.jupyter.charts.PANELS``; default the usual set).
        max_points: at most this many bars are sent to the browser; more are aggregated.
        namespace: where "to variable" binds names (default: IPython's user namespace;
            without IPython the button is "to Python" and fills :attr:`exported`).
        show_summary: draw the summary line above the chart.

    Attributes:
        df: the frame shown.
        panels: the panels drawn.
        spec: the Altair chart drawn.
        brush_range: ``(start, end)`` UTC timestamps of the brush, or ``None``.
        brushed: the rows inside the brush.
        exported: the frame "to Python" last handed over.
    """

    _esm = esm("loader.js", "panel.js")

    def __init__(
        self,
        df: pd.DataFrame,
        *,
        panels: str | list[str] | tuple[str, ...] | None = None,
        max_points: int = MAX_POINTS,
        namespace: dict[str, Any] | None = None,
        show_summary: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(namespace=namespace, show_summary=show_summary, **kwargs)
        self.panels = parse_panels(panels)
        self._draw(df, self.panels, max_points)
        self.df = df

    @property
    def brushed(self) -> pd.DataFrame:
        """The rows inside the brush (the whole frame when nothing is brushed)."""
        out = super().brushed
        assert out is not None  # a panel always has a frame
        return out
