"""What the data is, said on every view: simulated demo data and the free preview are
named in the summary line and the chart subtitle; the user's own API data needs no
label."""

from __future__ import annotations

from typing import Any

__all__ = ["source_label"]


def source_label(attrs: dict[str, Any]) -> str | None:
    """The label to show for a frame's ``attrs``, or ``None`` for the user's API data."""
    if attrs.get("simulated") or attrs.get("source") == "preview":
        return str(attrs.get("label") or ("SIMULATED demo data" if attrs.get("simulated") else "Aperiodic preview"))
    return None
