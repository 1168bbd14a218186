"""The chart library, once per page: the front-end files and the one model holding them.

Every chart needs Vega, Vega-Lite and Vega-Embed (about 0.85 MB of JavaScript, shipped
as ``js/vega.bundle.js``, built by ``js/build_vega.sh``: no CDN, ever) and the panel's
view (``js/chart_view.js``). A widget's own code (its ``_esm``) is saved into
the notebook with every widget, so neither goes there. Instead one
:class:`VegaLibrary` model per kernel holds both, gzip'd (about 0.3 MB), every chart
widget refers to it, and the page imports them once (``loadLibrary`` in
``js/loader.js``, the few lines each widget's ``_esm`` starts with). A saved notebook
holds the library once, and a chart still renders from saved state with no kernel.
Where the reference cannot be followed (the model was closed, as marimo does when the
cell that made it re-runs), a chart asks its kernel for the library instead.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import threading
from pathlib import Path

import anywidget
import traitlets

__all__ = ["VegaLibrary", "shared_library", "js_path", "esm", "library_code"]


def js_path(name: str) -> Path:
    """A front-end file: shipped in ``static/`` inside the wheel, read from the repo's
    ``js/`` folder in a source checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "static" / name, package.parent / "js" / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"front-end file {name} is missing from this installation")


def esm(*names: str) -> str:
    """One ES module from several front-end files, in order: ``loader.js`` (no exports)
    in front of the file that exports the widget."""
    return "\n".join(js_path(n).read_text(encoding="utf-8") for n in names)


@functools.lru_cache(maxsize=1)
def library_code() -> tuple[bytes, bytes]:
    """``(Vega bundle, chart view)``, each gzip'd (the page unzips them with
    ``DecompressionStream``)."""
    return tuple(  # type: ignore[return-value]
        gzip.compress(js_path(name).read_bytes(), compresslevel=9, mtime=0) for name in ("vega.bundle.js", "chart_view.js")
    )


class VegaLibrary(anywidget.AnyWidget):
    """The model that holds the chart library for every chart of a kernel; never displayed.

    Attributes:
        code: ``js/vega.bundle.js``, gzip'd.
        view: ``js/chart_view.js``, gzip'd.
        version: a digest of both: pages keep one import per version.
    """

    _esm = "export default { render() {} };"
    code = traitlets.Bytes(b"").tag(sync=True)
    view = traitlets.Bytes(b"").tag(sync=True)
    version = traitlets.Unicode("").tag(sync=True)

    def __init__(self) -> None:
        code, view = library_code()
        super().__init__(code=code, view=view, version=hashlib.sha256(code + view).hexdigest()[:16])


_shared = threading.local()


def shared_library() -> VegaLibrary:
    """The library for charts made in this thread, made once.

    One per thread, because marimo runs each session of ``marimo run`` as a thread of
    one process, and a model opened in one session never reaches another's page. Made
    again when its comm was closed (marimo closes a cell's widgets when it re-runs)."""
    lib: VegaLibrary | None = getattr(_shared, "library", None)
    comm = getattr(lib, "comm", None)
    # ipykernel's and marimo's comms both mark a closed comm with `_closed`.
    if lib is None or comm is None or getattr(comm, "_closed", False):
        lib = VegaLibrary()
        _shared.library = lib
    return lib
