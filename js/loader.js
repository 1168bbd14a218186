// Loads the chart library once per page: Vega (js/vega.bundle.js) and the panel's view
// (js/chart_view.js), both held gzip'd by the kernel's one VegaLibrary model
// (vega_library.py) that every chart widget refers to. A saved notebook thus holds them
// once, however many charts it has. The kernel puts this file in front of js/panel.js
// and js/explorer.js (vega_library.esm), so it declares and exports nothing.

const LIBRARY_PAGE_KEY = Symbol.for("aperiodic-jupyter.library");
const LIBRARY_WAIT_MS = 5000;

function bytesOf(value) {
  if (value instanceof DataView) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (typeof value === "string" && value) return Uint8Array.from(atob(value), (c) => c.charCodeAt(0)); // base64 in a saved state
  return null;
}

async function gunzip(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function timeout(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

// A request to the kernel, answered by a custom message of the same type with buffers.
function askKernel(model, request, ms = 60000) {
  return new Promise((resolve, reject) => {
    const onMessage = (msg, buffers) => {
      if (msg.type !== request.type) return;
      clearTimeout(timer);
      model.off("msg:custom", onMessage);
      resolve((buffers || []).map(bytesOf));
    };
    const timer = setTimeout(() => {
      model.off("msg:custom", onMessage);
      reject(new Error("no kernel answered: run the cell again to draw this chart"));
    }, ms);
    model.on("msg:custom", onMessage);
    model.send(request);
  });
}

async function importGzipped(bytes) {
  const url = URL.createObjectURL(new Blob([await gunzip(bytes)], { type: "text/javascript" }));
  try {
    return await import(/* webpackIgnore: true */ url);
  } finally {
    URL.revokeObjectURL(url);
  }
}

async function fetchLibrary(model) {
  let parts = null;
  const ref = model.get("_vega");
  if (typeof ref === "string" && ref.startsWith("IPY_MODEL_")) {
    try {
      const found = model.widget_manager.get_model(ref.slice("IPY_MODEL_".length));
      const library = await timeout(Promise.resolve(found), LIBRARY_WAIT_MS, "finding the chart library");
      parts = [bytesOf(library.get("code")), bytesOf(library.get("view"))];
    } catch (error) {
      console.debug("aperiodic-jupyter: no chart library model on this page, asking the kernel", error);
    }
  }
  // Not reachable (closed, as marimo does when the cell that made it re-runs): the kernel sends it.
  if (!parts || !parts.every(Boolean)) parts = await askKernel(model, { type: "library" });
  if (parts.length !== 2 || !parts.every(Boolean)) throw new Error("the kernel sent no chart library");
  const [vega, view] = await Promise.all(parts.map(importGzipped));
  return { vegaEmbed: vega.vegaEmbed, view, kit: { bytesOf, gunzip } };
}

// One import per page and library version, whichever widget asks first.
function loadLibrary(model) {
  const cache = (globalThis[LIBRARY_PAGE_KEY] ??= new Map());
  const version = model.get("vega_version") || "?";
  if (!cache.has(version)) {
    cache.set(
      version,
      fetchLibrary(model).catch((error) => {
        cache.delete(version); // the next widget tries again
        throw error;
      }),
    );
  }
  return cache.get(version);
}

// Draws the panel (summary, chart, export bar) into `el` once the library is loaded;
// until then, and if it cannot be loaded, says so in one line.
function mountPanel(model, el, options = {}) {
  const note = document.createElement("div");
  note.className = "apj-chart-message";
  note.textContent = "loading the chart library…";
  el.append(note);
  let cleanup = null;
  let gone = false;
  loadLibrary(model).then(
    (library) => {
      note.remove();
      if (!gone) cleanup = library.view.renderPanel(model, el, { ...options, vegaEmbed: library.vegaEmbed, ...library.kit });
    },
    (error) => {
      note.textContent = `The chart could not be drawn: ${error.message}`;
    },
  );
  return () => {
    gone = true;
    if (cleanup) cleanup();
  };
}
