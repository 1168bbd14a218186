"""A widget's text form: what a terminal, nbconvert or a saved notebook shows.

ipywidgets puts ``repr(widget)`` cut at 110 characters into ``text/plain``; for our
widgets that would be ``FlowPanel(children=…`` or half a summary line. Widgets that mix
this in give their whole ``__repr__`` (the summary line) instead.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TextFallback"]


class TextFallback:
    """Mixin for ipywidgets: ``text/plain`` is the whole ``repr(self)``."""

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        bundle = super()._repr_mimebundle_(**kwargs)  # type: ignore[misc]
        if bundle is not None:
            bundle["text/plain"] = repr(self)
        return bundle
