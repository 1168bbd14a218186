"""The browser's share: how long users wait in JupyterLab + Chromium once the kernel has the data.

    .venv/bin/python benchmarks/browser_bench.py                 # every case, 5 runs each (10-15 minutes)
    .venv/bin/python benchmarks/browser_bench.py --max-load 2.5  # each run waits up to 90 s for a calm machine
    .venv/bin/python benchmarks/browser_bench.py --quick         # one run of %flow, 3 months of 1h (about a minute)
    .venv/bin/python benchmarks/browser_bench.py --profile DIR   # and CPU profiles (DevTools format) of the draws and a brush

JupyterLab and Debian's Chromium are started as the browser tests start them
(``tests/browser_harness.py``). Every case is its own notebook and kernel, on the demo
source (simulated, no network). The measured cell or click runs once as a warm-up (the
page imports Vega, the kernel fills its memory cache), then ``--runs`` times; every
figure is the median of those runs, each of which also records ``/proc/loadavg``
(the machine may be shared: ``--max-load`` waits for a calm one before each run).

What is timed, and with whose clock (kernel and page share the machine's wall clock):

- kernel: from the execute request (``%flow``: the page sends it; the explorer: the
  click on Load) to the message carrying the chart's state, by the ``date`` the kernel
  wrote into that message's header. Inside it, ``ChartWidget._draw`` is timed by a
  setup cell that wraps it (and ``chart_for``, ``pack_spec``): its start is the moment
  the kernel has the data.
- browser: from that message's arrival at the page's WebSocket to the end of the last
  render of the new Vega view (``performance.now()``), split into stages by hooks in
  the page (:data:`BENCH_HOOK`): widget (model and view made), decode (gunzip, rows,
  spec), compile (Vega-Lite to Vega, parse), view set-up, dataflow (transforms,
  scales, layout) and canvas drawing.
- brush: a drag across the overview strip of a year of 1m bars, one pointer move per
  frame; from each move's event time to the end of the render that shows it (every
  panel is one Vega view, so one render redraws them all).
- what if: the same chart's Vega-Lite spec, changed (:data:`VARIANTS`), drawn and
  brushed by the page's own ``vegaEmbed``; and what the chart's rows cost in Altair.

Targets (issue 14): a year of 1m bars drawn ≤ 2 s after the kernel has the data; a
brush redraw ≤ 100 ms. Nothing here asserts on time; the tables say met or missed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from harness import Section  # noqa: E402
from run import machine  # noqa: E402

from tests.browser_harness import hooked_page, jupyter_server, server_app, wait_for_idle_kernel, wait_for_view, write_notebook  # noqa: E402
from tests.test_browser import CHROMIUM_FLAGS, VEGA_STATE, _open_and_run_all  # noqa: E402

DATA_TARGET_MS = 2000.0  # a year of 1m bars visible after the kernel has the data
BRUSH_TARGET_MS = 100.0  # a brush redraw
RANGES = {"3 months of 1h": ("1h", "2024-01..2024-03"), "a year of 1m": ("1m", "2024-01..2024-12")}
EXPLORER_SYMBOLS = ("BTC", "ETH")
VIEWPORT = {"width": 1280, "height": 1500}
SETTLE_MS = 600  # a view is settled when it has not run for this long
TIMEOUT_MS = 180_000  # a year of 1m on a busy 2-core machine, cold

# In the page, before JupyterLab loads: timestamps (performance.now(), and Date.now() to
# compare with the kernel's clock) of every kernel message at the WebSocket, every Vega
# view made, run and rendered, the chart library's gunzip and vegaEmbed calls, and the
# pointer/click events. Layered on the tests' VEGA_HOOK (hooked_page), which keeps views.
BENCH_HOOK = r"""
(() => {
  const B = (window.__apjBench = { msgs: [], events: [], inputs: [], views: [], renderers: [] });
  const now = () => performance.now();
  const push = (list, entry) => list.push({ ...entry, wall: Date.now() });
  const text = new TextDecoder();

  // -- kernel messages: Jupyter's v1 WebSocket protocol, or the legacy JSON/binary one
  const parse = (data, protocol) => {
    if (typeof data === "string") return JSON.parse(data);
    if (ArrayBuffer.isView(data)) data = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
    if (!(data instanceof ArrayBuffer)) return null;
    const dv = new DataView(data);
    if (protocol === "v1.kernel.websocket.jupyter.org") {
      const n = Number(dv.getBigUint64(0, true));
      const off = Array.from({ length: n }, (_, i) => Number(dv.getBigUint64(8 * (i + 1), true)));
      const part = (i) => text.decode(new Uint8Array(data, off[i], (off[i + 1] ?? data.byteLength) - off[i]));
      return { channel: part(0), header: JSON.parse(part(1)), parent_header: JSON.parse(part(2)), content: JSON.parse(part(4)) };
    }
    const parts = dv.getUint32(0);
    const start = dv.getUint32(4);
    const end = parts > 1 ? dv.getUint32(8) : data.byteLength;
    return JSON.parse(text.decode(new Uint8Array(data, start, end - start)));
  };
  const record = (dir, data, protocol) => {
    const t = now();
    const bytes = data.byteLength ?? data.length ?? data.size ?? 0;
    try {
      const m = parse(data, protocol);
      if (!m) return;
      const c = m.content || {};
      const d = c.data || {};
      push(B.msgs, {
        dir, t, bytes, channel: m.channel, type: m.header.msg_type, id: m.header.msg_id, date: m.header.date,
        parent: (m.parent_header || {}).msg_id || null, comm: c.comm_id || null, method: d.method || null,
        keys: Object.keys(d.state || {}), custom: (d.content || {}).type || null, status: c.execution_state || null,
      });
    } catch (error) {
      push(B.msgs, { dir, t, bytes, error: String(error) });
    }
  };
  const Native = window.WebSocket;
  class Hooked extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => record("in", e.data, this.protocol)); // before JupyterLab's
    }
    send(data) {
      record("out", data, this.protocol);
      return super.send(data);
    }
  }
  window.WebSocket = Hooked;

  // -- Vega: views made (the View constructor sets _scenegraph first), runs, renders
  const viewOf = (renderer) => B.views.findIndex((v) => v._renderer === renderer);
  const patchRenderer = (renderer) => {
    const proto = renderer && Object.getPrototypeOf(renderer);
    if (!proto || Object.prototype.hasOwnProperty.call(proto, "__apjBench") || typeof proto._render !== "function") return;
    proto.__apjBench = true;
    const draw = proto._render;
    proto._render = function (...args) {
      const t0 = now();
      try {
        return draw.apply(this, args);
      } finally {
        push(B.events, { kind: "render", view: viewOf(this), t0, t: now() });
      }
    };
  };
  const patchView = (view) => {
    const proto = Object.getPrototypeOf(view);
    if (Object.prototype.hasOwnProperty.call(proto, "__apjBench")) return;
    proto.__apjBench = true;
    const evaluate = proto.evaluate;
    proto.evaluate = async function (...args) {
      patchRenderer(this._renderer);
      const t0 = now();
      try {
        return await evaluate.apply(this, args);
      } finally {
        push(B.events, { kind: "run", view: B.views.indexOf(this), t0, t: now() });
      }
    };
  };
  const previous = Object.getOwnPropertyDescriptor(Object.prototype, "_scenegraph");
  Object.defineProperty(Object.prototype, "_scenegraph", {
    configurable: true,
    set(value) {
      if (previous && previous.set) previous.set.call(this, value);
      else Object.defineProperty(this, "_scenegraph", { value, writable: true, configurable: true, enumerable: true });
      if (typeof this.scale === "function" && typeof this.container === "function") {
        patchView(this);
        push(B.events, { kind: "view", view: B.views.push(this) - 1, t0: now(), t: now() });
      }
    },
  });

  // -- the chart library (js/loader.js keeps its import in this Map): time its gunzip and vegaEmbed
  const timed = (kind, fn, about = () => ({})) =>
    Object.assign(async function (...args) {
      const t0 = now();
      try {
        return await fn.apply(this, args);
      } finally {
        push(B.events, { kind, t0, t: now(), ...about(...args) });
      }
    }, fn);
  class Libraries extends Map {
    set(version, promise) {
      const instrumented = Promise.resolve(promise).then((lib) => {
        if (lib && lib.kit && !lib.__apjBench) {
          lib.__apjBench = true;
          lib.kit.gunzip = timed("gunzip", lib.kit.gunzip, (bytes) => ({ bytes: bytes.length }));
          lib.vegaEmbed = timed("embed", lib.vegaEmbed, (_el, spec) => ({
            rows: Object.values((spec && spec.datasets) || {}).reduce((n, rows) => n + rows.length, 0),
          }));
        }
        return lib;
      });
      return super.set(version, instrumented);
    }
  }
  globalThis[Symbol.for("aperiodic-jupyter.library")] = new Libraries();

  // -- what the user does
  for (const type of ["pointerdown", "pointermove", "pointerup", "click"]) {
    window.addEventListener(type, (e) => push(B.inputs, { type, t: e.timeStamp, handled: now(), load: Boolean(e.target.closest && e.target.closest(".apj-load")) }), { capture: true });
  }
})();
"""

# Run first in every notebook: load the extension and time the kernel's drawing
# (``ChartWidget._draw`` and its parts) into a file the benchmark reads; epoch ms.
KERNEL_SETUP = """\
%load_ext aperiodic_jupyter
import functools as _ft, json as _json, time as _time
from aperiodic_jupyter.jupyter import chart_widget as _cw

def _timed(stage, fn, log={log!r}):
    @_ft.wraps(fn)
    def timed(*args, **kwargs):
        t0 = _time.time() * 1000
        try:
            return fn(*args, **kwargs)
        finally:
            with open(log, "a") as f:
                f.write(_json.dumps({{"stage": stage, "t0": t0, "t1": _time.time() * 1000}}) + "\\n")
    return timed

_cw.ChartWidget._draw = _timed("draw", _cw.ChartWidget._draw)
_cw.chart_for = _timed("chart", _cw.chart_for)
_cw.pack_spec = _timed("pack", _cw.pack_spec)
"""


def loadavg() -> float:
    """The machine's 1-minute load average (2 cores: above 2 the benchmark shares them)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def calm(max_load: float | None, patience_s: float = 90.0) -> float:
    """Wait (at most ``patience_s``) until the load average is at most ``max_load``;
    return the load the run starts at."""
    deadline = time.monotonic() + patience_s
    while max_load is not None and loadavg() > max_load and time.monotonic() < deadline:
        time.sleep(2)
    return loadavg()


def kernel_ms(date: str) -> float:
    """A Jupyter header date (the kernel's wall clock, microseconds) in epoch ms."""
    return datetime.fromisoformat(date.replace("Z", "+00:00")).timestamp() * 1000


# -- one run's record and what it measures ----------------------------------------------


@dataclass
class Record:
    """What the page and the kernel logged during one run."""

    msgs: list[dict[str, Any]]
    events: list[dict[str, Any]]
    inputs: list[dict[str, Any]]
    kernel: list[dict[str, Any]]
    load: float

    def wall(self, t: float) -> float:
        """A page time (performance.now()) on the wall clock (epoch ms), by the median
        offset of the Date.now() stamps taken beside it."""
        offsets = sorted(e["wall"] - e["t"] for e in self.events + self.msgs if "t" in e)
        return t + offsets[len(offsets) // 2]

    def after(self, kind: str, t: float) -> list[dict[str, Any]]:
        """The page's events of ``kind`` that began at or after page time ``t``."""
        return [e for e in self.events if e["kind"] == kind and e["t0"] >= t]


@dataclass
class Draw:
    """One chart, from the request to the last render of its view; milliseconds."""

    load: float
    kernel: float  # request → the chart's state message sent (kernel clock)
    fetch: float  # request → the kernel has the data (ChartWidget._draw starts)
    build: float  # the kernel has the data → state message sent
    transfer: float  # state message sent → arrived at the page
    browser: float  # arrived → last render of the new view
    total: float  # request → last render
    after_data: float  # the kernel has the data → last render
    payload_kb: float
    rows: int
    stages: dict[str, float] = field(default_factory=dict)  # the browser's part
    kernel_stages: dict[str, float] = field(default_factory=dict)  # "chart built and sent"


def measure_draw(rec: Record, request_wall: float, request_t: float) -> Draw:
    """The chart drawn after a request made at ``request_wall`` (epoch ms) /
    ``request_t`` (page time)."""
    state = next(
        m for m in rec.msgs if m["dir"] == "in" and m.get("method") == "update" and "charts" in m["keys"] and m["t"] >= request_t
    )
    sent = kernel_ms(state["date"])
    draws = [k for k in rec.kernel if k["stage"] == "draw" and request_wall - 5 <= k["t0"] <= sent]
    if not draws:
        raise RuntimeError("the kernel logged no ChartWidget._draw for this chart")
    draw = draws[-1]
    data_at = draw["t0"]
    inside = {k["stage"]: k["t1"] - k["t0"] for k in rec.kernel if k["stage"] != "draw" and draw["t0"] <= k["t0"] <= draw["t1"]}
    kernel_stages = {
        "Altair chart": inside.get("chart", float("nan")),
        "to_dict, rows, gzip": sent - data_at - inside.get("chart", 0.0) - inside.get("pack", 0.0),
        "packing": inside.get("pack", float("nan")),
    }
    views = rec.after("view", state["t"])
    if not views:
        raise RuntimeError("no Vega view was made after the chart's state arrived")
    view = views[-1]["view"]
    runs = [e for e in rec.events if e["kind"] == "run" and e.get("view") == view]
    renders = [e for e in rec.events if e["kind"] == "render" and e.get("view") == view]
    if not renders:
        raise RuntimeError("the new Vega view never rendered")
    last = renders[-1]["t"]
    embed = next(e for e in rec.after("embed", state["t"]) if e["t0"] <= views[-1]["t0"])
    unzip = rec.after("gunzip", state["t"])
    first_run, first_render = runs[0], renders[0]
    stages = {
        "widget": (unzip[0]["t0"] if unzip else embed["t0"]) - state["t"],
        "decode": embed["t0"] - (unzip[0]["t0"] if unzip else embed["t0"]),
        "compile": views[-1]["t0"] - embed["t0"],
        "view set-up": first_run["t0"] - views[-1]["t0"],
        "dataflow": first_render["t0"] - first_run["t0"],
        "drawing": first_render["t"] - first_render["t0"],
        "later runs": last - first_render["t"],
    }
    last_wall = rec.wall(last)
    return Draw(
        load=rec.load,
        kernel=sent - request_wall,
        fetch=data_at - request_wall,
        build=sent - data_at,
        transfer=state["wall"] - sent,
        browser=last - state["t"],
        total=last_wall - request_wall,
        after_data=last_wall - data_at,
        payload_kb=state["bytes"] / 1000,
        rows=int(embed.get("rows", 0)),
        stages=stages,
        kernel_stages=kernel_stages,
    )


@dataclass
class Drag:
    """One brush drag: each pointer move to the end of the render that shows it; ms."""

    load: float
    moves: int  # pointer moves during the drag
    redraws: list[float]  # per render: the oldest move it answers → the render's end
    release: float  # the last move's event → the view's last render after the drag
    stages: dict[str, float] = field(default_factory=dict)  # medians per redraw


def measure_drag(rec: Record, view: int) -> Drag:
    down = next(i for i in rec.inputs if i["type"] == "pointerdown")
    up = next(i for i in rec.inputs if i["type"] == "pointerup" and i["t"] >= down["t"])
    moves = [i for i in rec.inputs if i["type"] == "pointermove" and down["t"] <= i["t"] <= up["t"]]
    runs = [e for e in rec.events if e["kind"] == "run" and e.get("view") == view and e["t0"] >= down["t"]]
    renders = [e for e in rec.events if e["kind"] == "render" and e.get("view") == view and e["t0"] >= down["t"]]
    # A render shows every move before it began: it answers the moves still waiting,
    # timed from the oldest (moves coalesced or queued behind a slow run wait longer).
    waiting = list(moves)
    redraws: list[float] = []
    parts: dict[str, list[float]] = {"input wait": [], "dataflow": [], "drawing": []}
    for render in sorted(renders, key=lambda r: r["t0"]):
        answered = [m for m in waiting if m["t"] <= render["t0"]]
        if not answered:
            continue
        waiting = waiting[len(answered) :]
        # The run that drew it: the first to start after the newest move it shows.
        run = min(
            (r for r in runs if answered[-1]["t"] <= r["t0"] <= render["t0"] <= r["t"]), key=lambda r: r["t0"], default=None
        )
        start = run["t0"] if run else render["t0"]
        redraws.append(render["t"] - answered[0]["t"])
        parts["input wait"].append(start - answered[0]["t"])
        parts["dataflow"].append(render["t0"] - start)
        parts["drawing"].append(render["t"] - render["t0"])
    last = max((r["t"] for r in renders), default=up["t"])
    return Drag(
        load=rec.load,
        moves=len(moves),
        redraws=redraws,
        release=last - moves[-1]["t"] if moves else 0.0,
        stages={k: _median(v) for k, v in parts.items()},
    )


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- the page ----------------------------------------------------------------------------


class Bench:
    """A JupyterLab page with the benchmark's hooks, one notebook and kernel per case."""

    def __init__(self, url: str, root: Path, browser: Any, max_load: float | None = None) -> None:
        self.url, self.root, self.browser, self.max_load = url, root, browser, max_load
        self.kernel_log = root / "kernel-times.jsonl"
        self.kernel_seen = 0

    @contextmanager
    def notebook(self, name: str, *cells: str) -> Iterator[Any]:
        """Open a notebook of the setup cell and ``cells``, run it all, yield the page;
        close the page and shut the kernel down after."""
        write_notebook(self.root, name, KERNEL_SETUP.format(log=str(self.kernel_log)), *cells)
        page, errors = hooked_page(self.browser, viewport=VIEWPORT)
        page.add_init_script(BENCH_HOOK)
        try:
            _open_and_run_all(page, self.url, name)
            yield page
            if errors:
                print(f"  page errors in {name}: {errors[:3]}", file=sys.stderr)
        finally:
            self._shutdown(page, name)
            page.close()

    def _shutdown(self, page: Any, name: str) -> None:
        """Stop the notebook's kernel (a year of 1m bars holds hundreds of MB)."""
        try:
            sessions = page.request.get(f"{self.url}/api/sessions").json()
            xsrf = next((c["value"] for c in page.context.cookies() if c["name"] == "_xsrf"), "")
            for s in sessions:
                if s.get("path") == name:
                    page.request.delete(f"{self.url}/api/sessions/{s['id']}", headers={"X-XSRFToken": xsrf})
        except Exception as exc:  # the server stops all kernels at the end anyway
            print(f"  could not stop the kernel of {name}: {exc}", file=sys.stderr)

    def reset(self, page: Any) -> tuple[float, float, float]:
        """Wait for a calm machine (``max_load``), forget what the page logged; return
        (page time, wall time, load average)."""
        load = calm(self.max_load)
        t, wall = page.evaluate(
            "() => { const B = window.__apjBench; B.msgs.length = B.events.length = B.inputs.length = 0; return [performance.now(), Date.now()]; }"
        )
        return t, wall, load

    def record(self, page: Any, load: float) -> Record:
        """What was logged since :meth:`reset`, once the page's views have settled."""
        page.wait_for_function(
            f"""() => {{ const e = window.__apjBench.events.filter((x) => x.kind === 'run' || x.kind === 'render');
                   return performance.now() - (e.length ? e[e.length - 1].t : 0) > {SETTLE_MS}; }}""",
            timeout=TIMEOUT_MS,
            polling=100,
        )
        data = page.evaluate(
            "() => { const B = window.__apjBench; return { msgs: B.msgs, events: B.events, inputs: B.inputs }; }"
        )
        lines = self.kernel_log.read_text().splitlines() if self.kernel_log.exists() else []
        kernel = [json.loads(line) for line in lines[self.kernel_seen :]]
        self.kernel_seen = len(lines)
        # The higher of the load at the run's start and at its end: others' jobs start mid-run too.
        return Record(data["msgs"], data["events"], data["inputs"], kernel, max(load, loadavg()))

    def new_view_drawn(self, page: Any, scope: Any, views_before: int) -> None:
        page.wait_for_function(f"() => window.__apjVegaViews.length > {views_before}", timeout=TIMEOUT_MS)
        wait_for_view(page, scope, timeout=TIMEOUT_MS / 1000)

    def views(self, page: Any) -> int:
        return int(page.evaluate("() => window.__apjVegaViews.length"))

    # -- the cases ---------------------------------------------------------------------

    def run_cell(self, page: Any, cell: Any) -> Draw:
        """Execute ``cell`` again (Ctrl+Enter, as a user) and time its chart."""
        before = self.views(page)
        t, _wall, load = self.reset(page)
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Control+Enter")
        self.new_view_drawn(page, cell, before)
        return self.measure_cell(page, t, load)

    def measure_cell(self, page: Any, since: float, load: float) -> Draw:
        """The chart of the last execute request sent after page time ``since``."""
        rec = self.record(page, load)
        request = [m for m in rec.msgs if m["dir"] == "out" and m.get("type") == "execute_request" and m["t"] >= since][-1]
        return measure_draw(rec, request["wall"], request["t"])

    def click_load(self, page: Any, explorer: Any, symbol: str) -> Draw:
        """Type ``symbol`` into the explorer, click Load and time its chart."""
        explorer.locator("input.apj-symbol").fill(symbol)
        before = self.views(page)
        _t, _wall, load = self.reset(page)
        explorer.locator("button.apj-load").click()
        self.new_view_drawn(page, explorer, before)
        rec = self.record(page, load)
        click = next(i for i in rec.inputs if i["type"] == "click" and i["load"])
        return measure_draw(rec, rec.wall(click["t"]), click["t"])

    def drag(self, page: Any, cell: Any, lo: float, hi: float, moves: int = 20, frame_ms: int = 16) -> Drag:
        """Drag across the overview strip from ``lo`` to ``hi`` of its width, one move per
        frame, and time the redraws."""
        page.evaluate("(el) => el.querySelector('canvas.marks').scrollIntoView({block: 'end'})", cell.element_handle())
        page.wait_for_timeout(300)
        state = page.evaluate(VEGA_STATE, cell.element_handle())
        view = page.evaluate(
            "(el) => window.__apjBench.views.findIndex((v) => v.container() && v.container().isConnected && el.contains(v.container()))",
            cell.element_handle(),
        )
        strip = state["panels"][-1]
        y = strip["top"] + strip["height"] / 2
        x0, x1 = strip["left"] + strip["width"] * lo, strip["left"] + strip["width"] * hi
        page.mouse.move(x0, y)
        _t, _wall, load = self.reset(page)
        page.mouse.down()
        for k in range(1, moves + 1):
            page.mouse.move(x0 + (x1 - x0) * k / moves, y)
            page.wait_for_timeout(frame_ms)
        page.mouse.up()
        return measure_drag(self.record(page, load), view)


# -- the cases, as a user meets them ---------------------------------------------------------


@dataclass
class FlowCase:
    """``%flow`` of one range: the page's first chart (Run All), then warm runs and drags."""

    first: Draw
    draws: list[Draw]
    drags: list[Drag]
    variants: dict[str, Variant]
    altair: tuple[dict[str, list[float]], list[float]]  # ms per step, and the load averages meanwhile


def flow_case(bench: Bench, label: str, runs: int, profile: Path | None, what_if: bool) -> FlowCase:
    interval, rng = RANGES[label]
    line = f"%flow binance BTC {interval} {rng} -s demo"
    with bench.notebook(f"flow-{interval}.ipynb", line) as page:
        cell = page.locator(".jp-Cell").nth(1)
        bench.new_view_drawn(page, cell, 0)  # Run All: the page imports Vega, the kernel's cache is cold
        first = bench.measure_cell(page, 0.0, loadavg())
        draws = []
        for i in range(runs):
            draws.append(bench.run_cell(page, cell))
            print(f"  {label} %flow run {i + 1}: {_brief(draws[-1])}", file=sys.stderr, flush=True)
        drags: list[Drag] = []
        if interval == "1m":
            for i in range(runs):
                lo = 0.1 + 0.15 * (i % 5)
                drags.append(bench.drag(page, cell, lo, lo + 0.12))
                print(f"  brush drag {i + 1}: {_median(drags[-1].redraws):.0f} ms per redraw", file=sys.stderr, flush=True)
        variants, altair = spec_variants(page, interval, rng, runs) if what_if else ({}, ({}, []))
        if profile is not None:
            with cpu_profile(page, profile / f"flow-{interval}-draw.cpuprofile"):
                bench.run_cell(page, cell)
            if interval == "1m":
                with cpu_profile(page, profile / "brush-1m.cpuprofile"):
                    bench.drag(page, cell, 0.2, 0.5)
    return FlowCase(first, draws, drags, variants, altair)


def explorer_case(bench: Bench, label: str, runs: int) -> list[Draw]:
    interval, rng = RANGES[label]
    cell = (
        "from aperiodic_jupyter import FlowExplorer\n"
        f"FlowExplorer(exchange='binance-futures', symbol='BTC', interval={interval!r}, range={rng!r}, source='demo')"
    )
    with bench.notebook(f"explorer-{interval}.ipynb", cell) as page:
        explorer = page.locator(".apj-explorer").first
        explorer.wait_for(timeout=TIMEOUT_MS)
        wait_for_idle_kernel(bench.url, f"explorer-{interval}.ipynb")
        # Two symbols in turn: loading the chart on screen again would send no new rows.
        for symbol in EXPLORER_SYMBOLS:  # the warm-up: the kernel's cache is cold
            bench.click_load(page, explorer, symbol)
        draws = []
        for i in range(runs):
            draws.append(bench.click_load(page, explorer, EXPLORER_SYMBOLS[i % 2]))
            print(f"  {label} Load run {i + 1}: {_brief(draws[-1])}", file=sys.stderr, flush=True)
    return draws


# -- what if the chart were built otherwise: the same chart's spec, changed, drawn in the same page --

TIME_TIP_UNIT = "utcyearmonthdatehoursminutes"  # the bar-start tooltip before issue 14
_STRING = r'"(?:[^"\\]|\\.)*"'
_TIP_NUMBER = re.compile(rf"^format\(datum\[({_STRING})\], ({_STRING})\)$")
_TIP_TIME = re.compile(rf"^utcFormat\(datum\[({_STRING})\], {_STRING}\)$")


def _tip_calcs(spec: Any) -> dict[str, tuple[str, str | None]]:
    """Every tooltip text the spec computes (``formatted_tips``, ``time_tip`` in
    charts.py): ``{"tip_x": (field, d3 format, or None for the bar's start)}``."""
    found: dict[str, tuple[str, str | None]] = {}
    if isinstance(spec, list):
        for v in spec:
            found |= _tip_calcs(v)
    elif isinstance(spec, dict):
        for k, v in spec.items():
            if k != "datasets":
                found |= _tip_calcs(v)
        name, expr = str(spec.get("as", "")), str(spec.get("calculate", ""))
        if name.startswith("tip_"):
            number, when = _TIP_NUMBER.match(expr), _TIP_TIME.match(expr)
            if number:
                found[name] = (json.loads(number[1]), json.loads(number[2]))
            elif when:
                found[name] = (json.loads(when[1]), None)
    return found


def _tooltips(spec: Any, change: Any) -> Any:
    """``spec`` without its tooltip-text transforms, every encoding's tooltip list
    replaced by ``change(list)`` (None drops it)."""
    if isinstance(spec, list):
        return [_tooltips(v, change) for v in spec]
    if not isinstance(spec, dict):
        return spec
    out = {k: (_tooltips(v, change) if k != "datasets" else v) for k, v in spec.items()}
    if isinstance(out.get("transform"), list):
        out["transform"] = [t for t in out["transform"] if not str(t.get("as", "")).startswith("tip_")]
        if not out["transform"]:
            del out["transform"]
    enc = out.get("encoding")
    if isinstance(enc, dict) and "tooltip" in enc:
        new = change(enc["tooltip"])
        out["encoding"] = {k: v for k, v in enc.items() if k != "tooltip"} | ({"tooltip": new} if new is not None else {})
    return out


def _formatted_per_redraw(spec: dict[str, Any]) -> dict[str, Any]:
    """The tooltips as before issue 14: each line formatted by the mark, per item and
    redraw (``alt.Tooltip(field, format=...)``; the bar's start through its time unit)."""
    calcs = _tip_calcs(spec)

    def line(tip: dict[str, Any]) -> dict[str, Any]:
        if tip.get("field") not in calcs:
            return tip
        field, fmt = calcs[tip["field"]]
        if fmt is None:
            return {"field": field, "timeUnit": TIME_TIP_UNIT, "type": "temporal", "title": tip["title"]}
        # A field's name is its default title: the chart before gave none then.
        return {"field": field, "type": "quantitative", "format": fmt} | (
            {"title": tip["title"]} if tip["title"] != field else {}
        )

    return _tooltips(spec, lambda tips: [line(t) for t in tips])


def _described_per_item(spec: dict[str, Any]) -> dict[str, Any]:
    """Vega-Lite's default ARIA description, as before issue 14: every encoded field of
    every item, formatted, per item and redraw (the chart gives one fixed line instead)."""
    config = {**spec.get("config", {})}
    mark = {k: v for k, v in config.pop("mark", {}).items() if k != "description"}
    return {**spec, "config": config | ({"mark": mark} if mark else {})}


#: The chart as sent; its tooltips as before (formatted by each mark per item, on
#: every redraw, rather than once per row by a calculate transform); its ARIA
#: descriptions as before (Vega-Lite's default, every field of every item); both, which
#: is the chart as it was drawn before issue 14; and no tooltips at all (the floor).
VARIANTS = {
    "as sent": lambda spec: spec,
    "tooltips formatted per item and redraw (before)": _formatted_per_redraw,
    "ARIA description per item (before)": _described_per_item,
    "both: the chart before issue 14": lambda spec: _described_per_item(_formatted_per_redraw(spec)),
    "no tooltips (the floor)": lambda spec: _tooltips(spec, lambda _tips: None),
}

# Embed a spec with the page's own chart library (its vegaEmbed), then move the brush
# as the overview strip does (its store), timing each run.
EMBED_AND_BRUSH = """
async ([spec, spans]) => {
  const lib = await [...globalThis[Symbol.for("aperiodic-jupyter.library")].values()][0];
  const el = document.createElement("div");
  document.body.append(el);
  const t0 = performance.now();
  const { view, vgSpec, finalize } = await lib.vegaEmbed(el, spec, { renderer: "canvas", actions: false });
  const embed = performance.now() - t0;
  const unit = vgSpec.marks[vgSpec.marks.length - 1].name.replace(/_group$/, "");
  const times = spec.datasets.flow.map((row) => row.time);
  const brush = [];
  for (const [lo, hi] of spans) {
    const values = [[times[Math.floor(lo * times.length)], times[Math.floor(hi * times.length)]]];
    const s = performance.now();
    await view.data("brush_store", [{ unit, fields: [{ field: "time", channel: "x", type: "R" }], values }]).runAsync();
    brush.push(performance.now() - s);
  }
  finalize();
  el.remove();
  return { embed, brush };
}
"""


@dataclass
class Variant:
    embeds: list[float]  # vegaEmbed → the view's first run done, ms
    brushes: list[float]  # one brush move's run, ms
    loads: list[float] = field(default_factory=list)  # the load average between rounds


def spec_variants(
    page: Any, interval: str, rng: str, runs: int
) -> tuple[dict[str, Variant], tuple[dict[str, list[float]], list[float]]]:
    """The chart %flow draws (built here from the same demo months), as sent and changed
    (:data:`VARIANTS`), drawn and brushed ``runs`` times each, interleaved; and what its
    rows cost in Altair here (:func:`rows_in_altair`)."""
    import aperiodic_jupyter as aj
    from aperiodic_jupyter.jupyter.chart_widget import chart_for
    from aperiodic_jupyter.jupyter.panel_choice import DEFAULT_PANELS

    df = aj.get_flow("binance", "BTC", interval, rng, source="demo", progress=False, with_price=True)
    chart = chart_for(df, DEFAULT_PANELS)
    spec = chart.to_dict()
    specs = {name: change(spec) for name, change in VARIANTS.items()}
    spans = [(0.1 + 0.05 * k, 0.3 + 0.05 * k) for k in range(6)]
    out = {name: Variant([], []) for name in specs}
    loads = [loadavg()]
    for _ in range(runs + 1):  # the first round warms up
        for name, s in specs.items():
            got = page.evaluate(EMBED_AND_BRUSH, [s, spans])
            out[name].embeds.append(got["embed"])
            out[name].brushes += got["brush"][1:]  # the first run after embedding also settles the view
        loads.append(loadavg())
    for v in out.values():
        del v.embeds[0]
        del v.brushes[: len(spans) - 1]
        v.loads = loads
    return out, rows_in_altair(chart, spec, runs)


def rows_in_altair(chart: Any, spec: dict[str, Any], runs: int) -> tuple[dict[str, list[float]], list[float]]:
    """Milliseconds the chart's rows cost inside Altair: given as before issue 14 (with
    ``.properties``, which validates every row, then Altair's ``to_dict()``, which walks
    and validates them again) and as now (set as an attribute; ``LinkedViews.to_dict``
    converts the chart without them and puts them back). Both give the same spec."""
    import altair as alt

    rows = chart.datasets
    bare = chart.copy(deep=False)
    bare.datasets = alt.Undefined

    def attach() -> None:
        c = bare.copy(deep=False)
        c.datasets = rows

    def altairs() -> dict[str, Any]:
        return alt.VConcatChart.to_dict(chart)

    if json.dumps(altairs(), sort_keys=True) != json.dumps(spec, sort_keys=True):
        raise AssertionError("Altair's own to_dict gives another spec than the chart as sent")
    steps: dict[str, Any] = {
        "rows via .properties (before)": lambda: bare.properties(datasets=rows),
        "rows set as an attribute (now)": attach,
        "Altair's to_dict(): rows walked and validated (before)": altairs,
        "LinkedViews.to_dict(): rows left out, put back (now)": chart.to_dict,
    }
    out: dict[str, list[float]] = {name: [] for name in steps}
    loads = [loadavg()]
    for _ in range(runs):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            out[name].append((time.perf_counter() - t0) * 1000)
        loads.append(loadavg())
    return out, loads


def _brief(d: Draw) -> str:
    return f"kernel {d.kernel:.0f} ms, browser {d.browser:.0f} ms, total {d.total:.0f} ms, load {d.load:.1f}"


@contextmanager
def cpu_profile(page: Any, path: Path) -> Iterator[None]:
    """A CPU profile of the page (Chrome DevTools' format: open it in the Performance tab)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Profiler.enable")
    cdp.send("Profiler.setSamplingInterval", {"interval": 200})
    cdp.send("Profiler.start")
    try:
        yield
    finally:
        profile = cdp.send("Profiler.stop")["profile"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(profile))
        cdp.detach()
        print(f"  wrote {path}", file=sys.stderr)
        for line in top_functions(profile):
            print(f"    {line}", file=sys.stderr)


def top_functions(profile: dict[str, Any], n: int = 15) -> list[str]:
    """The functions with the most self time in a CPU profile, with where they are
    (line and column are 0-based; the Vega bundle is minified, one long line per chunk)."""
    nodes = {node["id"]: node for node in profile["nodes"]}
    deltas = profile.get("timeDeltas", [])
    self_us: dict[int, float] = {}
    for sample, dt in zip(profile.get("samples", []), deltas[1:] + [0], strict=False):
        self_us[sample] = self_us.get(sample, 0.0) + dt
    by_fn: dict[tuple[str, str, int, int], float] = {}
    for node_id, us in self_us.items():
        f = nodes[node_id]["callFrame"]
        key = (f["functionName"] or "(anonymous)", f["url"][-40:], f["lineNumber"], f["columnNumber"])
        by_fn[key] = by_fn.get(key, 0.0) + us
    total = sum(by_fn.values()) or 1.0
    top = sorted(by_fn.items(), key=lambda kv: -kv[1])[:n]
    return [f"{us / 1000:8.1f} ms {100 * us / total:5.1f} %  {name}  {url}:{line}:{col}" for (name, url, line, col), us in top]


# -- the report --------------------------------------------------------------------------------


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f}"


def _load_range(loads: list[float]) -> str:
    return f"{min(loads):.1f}–{max(loads):.1f}" if len(loads) > 1 else f"{loads[0]:.1f}"


def draw_section(title: str, rows: dict[str, list[Draw]]) -> Section:
    sec = Section(title)
    sec.header = [
        "range",
        "runs",
        "kernel ms",
        "of which: data ready",
        "chart built and sent",
        "transfer ms",
        "browser ms",
        "total ms",
        "data → drawn ms",
        "state kB",
        "bars drawn",
        "load 1m",
        "target",
    ]
    for label, draws in rows.items():
        after = statistics.median(d.after_data for d in draws)
        target = "—"
        if label == "a year of 1m":
            target = f"{'met' if after <= DATA_TARGET_MS else 'MISSED'} (≤ {DATA_TARGET_MS / 1000:.0f} s data → drawn)"
        sec.rows.append(
            [
                label,
                str(len(draws)),
                _ms([d.kernel for d in draws]),
                _ms([d.fetch for d in draws]),
                _ms([d.build for d in draws]),
                _ms([d.transfer for d in draws]),
                _ms([d.browser for d in draws]),
                _ms([d.total for d in draws]),
                f"{after:,.0f}",
                f"{statistics.median(d.payload_kb for d in draws):,.0f}",
                f"{draws[0].rows:,}",
                _load_range([d.load for d in draws]),
                target,
            ]
        )
    return sec


def stage_section(title: str, rows: dict[str, list[Draw]]) -> Section:
    first = next(iter(rows.values()))[0]
    kernel, browser = list(first.kernel_stages), list(first.stages)
    sec = Section(title)
    sec.header = ["case", *[f"kernel: {n} ms" for n in kernel], *[f"{n} ms" for n in browser], "browser ms"]
    for label, draws in rows.items():
        sec.rows.append(
            [
                label,
                *[_ms([d.kernel_stages[n] for d in draws]) for n in kernel],
                *[_ms([d.stages[n] for d in draws]) for n in browser],
                _ms([d.browser for d in draws]),
            ]
        )
    sec.notes.append(
        'Kernel, within "chart built and sent": `chart_for` (Altair), then `to_dict` (Altair validates the spec, not its rows), the rows '
        "as a frame, the spec's gzip and the message, and `pack_spec`. Browser: widget = the state's arrival → the chart's "
        "first gunzip (the widget manager, the output area, the anywidget view); decode = gunzip, rows and spec; compile = "
        "`vegaEmbed` → the Vega view made (Vega-Lite compile, Vega parse); view set-up = → its first run; dataflow = the first "
        "run → its render (transforms, scales, encoding every item, layout); drawing = the canvas render; later runs = "
        "renders after the first."
    )
    return sec


def variant_section(label: str, variants: dict[str, Variant]) -> Section:
    sec = Section(f"What the chart's spec costs in the page: {label}, the same chart changed, drawn in the same page")
    sec.header = [
        "spec",
        "embeds",
        "vegaEmbed ms (median)",
        "brush runs",
        "brush run ms (median)",
        "p90 ms",
        "brush target ≤ 100 ms",
    ]
    for name, v in variants.items():
        sec.rows.append(
            [
                name,
                str(len(v.embeds)),
                _ms(v.embeds),
                str(len(v.brushes)),
                _ms(v.brushes),
                f"{_p90(v.brushes):,.0f}",
                "met" if statistics.median(v.brushes) <= BRUSH_TARGET_MS else "MISSED",
            ]
        )
    sec.notes.append(
        "The chart %flow draws, built in the benchmark's process from the same demo months, handed to the page's own "
        "`vegaEmbed` (no widget, no kernel), then brushed by writing the overview strip's selection store "
        "(`brush_store`), which is what a drag writes, five spans per embed; variants interleaved, so they share the "
        f"machine's load (1 min: {_load_range(next(iter(variants.values())).loads)})."
    )
    return sec


def drag_section(drags: list[Drag]) -> Section:
    sec = Section("Brush: a drag across the overview strip of a year of 1m bars")
    stages = list(drags[0].stages)
    sec.header = [
        "drags",
        "moves",
        "redraws",
        "median ms",
        "p90 ms",
        "max ms",
        *[f"{n} ms" for n in stages],
        "last move → settled ms",
        "load 1m",
        "target ≤ 100 ms",
    ]
    redraws = sorted(r for d in drags for r in d.redraws)
    median = _median(redraws)
    sec.rows.append(
        [
            str(len(drags)),
            str(sum(d.moves for d in drags)),
            str(len(redraws)),
            f"{median:,.0f}",
            f"{_p90(redraws):,.0f}",
            f"{max(redraws, default=float('nan')):,.0f}",
            *[f"{_median([d.stages[n] for d in drags]):,.0f}" for n in stages],
            _ms([d.release for d in drags]),
            _load_range([d.load for d in drags]),
            "met" if median <= BRUSH_TARGET_MS else "MISSED",
        ]
    )
    sec.notes.append(
        "Each drag: 20 pointer moves sent about a frame apart (Playwright waits for the page to take each one, so a slow "
        "redraw delays the next move, as the user's own moves are coalesced meanwhile). A redraw: the oldest move a render "
        "shows (its `event.timeStamp`) → the end of that render of the chart's one Vega view (every panel; the canvas is "
        "drawn when it ends). Input wait = the move → the Vega run that drew it; dataflow = that run → its render "
        "(the brush's scale domains, CVD's filter and window, every item encoded again); drawing = the canvas render."
    )
    return sec


def altair_section(label: str, steps: dict[str, list[float]], loads: list[float]) -> Section:
    sec = Section(f"What the chart's rows cost in Altair: {label}, in the benchmark's process")
    sec.header = ["step", "runs", "median ms"]
    sec.rows = [[name, str(len(ms)), _ms(ms)] for name, ms in steps.items()]
    sec.notes.append(
        "Before issue 14 `flow_chart` gave the rows with `.properties(datasets=...)`, which validates all of them against "
        "the Vega-Lite schema, and `ChartWidget._draw`'s `to_dict()` walked and validated them again. Now the chart is a "
        "`LinkedViews` (charts.py) holding the rows as an attribute, and its `to_dict()` converts (and validates) the chart "
        "without them, then puts them back: the same spec as Altair's own `to_dict()` (checked). Steps interleaved; load "
        f"(1 min): {_load_range(loads)}."
    )
    return sec


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] if ordered else float("nan")


def versions() -> list[str]:
    from importlib.metadata import version

    chromium = shutil.which("chromium") or "chromium"
    import subprocess

    out = subprocess.run([chromium, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    vega = (ROOT / "js" / "vega.bundle.js").open().readline().strip("/ \n")
    return [
        f"- {out or 'chromium'} (headless, --disable-gpu), playwright {version('playwright')}",
        f"- jupyterlab {version('jupyterlab')}, ipykernel {version('ipykernel')}, anywidget {version('anywidget')}, altair {version('altair')}; {vega.split(':')[0]}",
    ]


def render(sections: list[Section], command: str, loads: list[float]) -> str:
    out = ["# Browser timing: JupyterLab + Chromium", "", "Reproduce with:", "", f"    {command}", ""]
    out += ["Targets met or missed, and why: `browser_analysis.md` (by hand, from these tables and CPU profiles).", ""]
    out += [*machine(), *versions()]
    out.append(
        f"- load average (1 min), the higher of each run's start and end: {min(loads):.1f} to {max(loads):.1f} on 2 cores "
        "(the machine is shared; `load 1m` in the tables)"
    )
    out.append("")
    for sec in sections:
        out += [f"## {sec.title}", "", "| " + " | ".join(sec.header) + " |", "|" + "---|" * len(sec.header)]
        out += ["| " + " | ".join(row) + " |" for row in sec.rows]
        out += [""] + [f"- {n}" for n in sec.notes] + ([""] if sec.notes else [])
    return "\n".join(out) + "\n"


@contextmanager
def jupyterlab(base: Path) -> Iterator[tuple[str, Path]]:
    """JupyterLab as the browser tests run it, its news toast off; yields (url, root)."""
    root = base / "root"
    root.mkdir()
    settings = base / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    app = server_app("jupyterlab", root, f"--LabApp.user_settings_dir={base / 'user-settings'}")
    with jupyter_server(app, base) as url:
        yield url, root


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one run of %%flow, 3 months of 1h: checks the harness, not the speed")
    p.add_argument("--runs", type=int, default=5, help="measured runs per case, after a warm-up (default 5)")
    p.add_argument("--output", help="write the tables here (default: benchmarks/browser_results.md, not for --quick)")
    p.add_argument("--profile", type=Path, help="also write CPU profiles (.cpuprofile) of each %%flow draw and of a brush here")
    p.add_argument(
        "--max-load",
        type=float,
        help="before each run, wait up to 90 s for the 1-minute load average to fall to this (a shared machine)",
    )
    p.add_argument("--no-what-if", dest="what_if", action="store_false", help="skip the spec variants of a year of 1m")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error(f"--runs must be at least 1, got {args.runs}")
    runs = 1 if args.quick else args.runs
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        p.error("Debian's chromium is required: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    flows: dict[str, FlowCase] = {}
    loads: dict[str, list[Draw]] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="apj-browser-bench-") as tmp:
        os.environ["APERIODIC_CACHE_DIR"] = str(Path(tmp) / "bench-cache")  # the what-if's demo months
        with jupyterlab(Path(tmp)) as (url, root), sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            bench = Bench(url, root, browser, args.max_load)
            try:
                for label in ["3 months of 1h"] if args.quick else list(RANGES):
                    print(f"%flow, {label} ...", file=sys.stderr, flush=True)
                    flows[label] = flow_case(
                        bench, label, runs, args.profile, args.what_if and not args.quick and label == "a year of 1m"
                    )
                if not args.quick:
                    for label in RANGES:
                        print(f"explorer Load, {label} ...", file=sys.stderr, flush=True)
                        loads[label] = explorer_case(bench, label, runs)
            finally:
                browser.close()
    print(f"done in {time.monotonic() - started:.0f} s", file=sys.stderr)

    draws = {label: case.draws for label, case in flows.items()}
    sections = [draw_section("%flow: execute request → every panel drawn (demo source, warm kernel cache)", draws)]
    sections[0].notes += _draw_notes() + [_first_note(label, case.first) for label, case in flows.items()]
    sections.append(stage_section("%flow: where the time goes (medians)", draws))
    if loads:
        sections.append(draw_section("Explorer: click on Load → every panel drawn (demo source, warm kernel cache)", loads))
        sections.append(stage_section("Explorer Load: where the time goes (medians)", loads))
    drags = [d for case in flows.values() for d in case.drags]
    if drags:
        sections.append(drag_section(drags))
    for label, case in flows.items():
        if case.variants:
            sections.append(variant_section(label, case.variants))
        if case.altair[0]:
            sections.append(altair_section(label, *case.altair))
    every = [d.load for ds in (*draws.values(), *loads.values()) for d in ds] + [d.load for d in drags]
    command = "python benchmarks/browser_bench.py" + (" --quick" if args.quick else f" --runs {runs}" if runs != 5 else "")
    command += f" --max-load {args.max_load:g}" if args.max_load is not None else ""
    text = render(sections, command, every)
    output = args.output or (None if args.quick else str(HERE / "browser_results.md"))
    if output:
        Path(output).write_text(text)
    print(text)
    return 0


def _first_note(label: str, d: Draw) -> str:
    return (
        f"{label}, the page's first chart (Run All: the page imports Vega, 0.87 MB; the kernel's cache is cold), one run: "
        f"kernel {d.kernel:,.0f} ms, browser {d.browser:,.0f} ms, of which widget {d.stages['widget']:,.0f} ms."
    )


def _draw_notes() -> list[str]:
    return [
        "kernel = the execute request (the page's send; for the explorer, the click) → the message carrying the chart's state, "
        "by the date the kernel wrote into its header; data ready = the request → `ChartWidget._draw` starts (parse, fetch from "
        "the memory cache, price join); chart built and sent = the rest (Altair chart, `to_dict`, packing, the message).",
        "browser = that message's arrival at the page's WebSocket → the end of the last render of the new Vega view; "
        "total = the request → that render; data → drawn = `_draw`'s start → that render (the target's measure).",
        "Kernel and page share the machine's wall clock; page times are `performance.now()`.",
    ]


if __name__ == "__main__":
    raise SystemExit(main())
