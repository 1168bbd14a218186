"""The Aperiodic preview: a small slice of real market data with no account.

The same API and files as :class:`~.api.ApiSource`, under ``{base}/data/preview/{metric}``
with the shared public key ``DEMO-KEY`` (never the user's key). What the slice covers is
decided by the server and changes over time (the public client's documentation mentions
June 2025 and each venue's BTC perpetual); a request outside it gets one line that says
so and how to get a key. Preview data is real: labelled "Aperiodic preview", never as
simulated and never as the user's own plan.
"""

from __future__ import annotations

from typing import Any

import httpx

from ..errors import PreviewError
from ..query import Query
from ..settings import Secret
from .api import KEY_HELP, ApiSource

__all__ = ["PreviewSource", "PREVIEW_KEY", "PREVIEW_LABEL"]

#: The shared public key the preview answers to.
PREVIEW_KEY = "DEMO-KEY"
PREVIEW_LABEL = "Aperiodic preview: real market data, limited slice"


class PreviewSource(ApiSource):
    """Months of the preview slice. Takes the :class:`~.api.ApiSource` options except
    the key, which is always ``DEMO-KEY``."""

    name = "preview"
    data_path = "data/preview"
    label = PREVIEW_LABEL

    def __init__(self, base_url: str | None = None, **options: Any) -> None:
        super().__init__(Secret(PREVIEW_KEY), base_url, **options)

    def __repr__(self) -> str:
        return f"PreviewSource(base_url={self.base_url!r})"

    def _raise_for_api_status(self, response: httpx.Response, query: Query) -> None:
        # Outside the slice the server refuses with a 4xx (which one is unspecified):
        # say what the preview is and how to get everything, in one line.
        if 400 <= response.status_code < 500 and response.status_code != 429:
            text = self._server_message(response)
            raise PreviewError(
                f"the Aperiodic preview does not cover {query.metric} {query.symbol} on {query.exchange}, "
                f"{query.interval}, {query.start}..{query.end}"
                + (f" ({text})" if text else "")
                + f"; it serves a small slice of real data. For all data use source='api' with a key: {KEY_HELP}",
                response.status_code,
            )
        super()._raise_for_api_status(response, query)
