// The flow panel's view: summary line, the Vega-Lite chart with its brush, the export bar.
// Shared by the flow panel and the explorer, and shipped once per page: the kernel's
// VegaLibrary model holds it with Vega, and js/loader.js imports it (mountPanel), then
// calls renderPanel with Vega-Embed and its helpers (bytesOf, gunzip).
//
// What the kernel sends (chart_widget.py): `chart_spec`, a Vega-Lite spec without its
// rows, as gzip'd JSON; `data` + `data_layout`, the rows as gzip'd binary columns (chart_data.py);
// `tail` + `tail_layout`, rows that replace the chart's rows from a time on (append; a
// live chart's tail also drops the rows before its window, `keep`).
// What the page sends back: `brush` ([start, end] in epoch ms, [] when cleared), `drawn`
// (the chart number it has drawn: marimo re-runs dependent cells when the page writes a
// trait), `to_python`, and messages for exports (PNG and SVG rendered here, with their
// bytes when the kernel writes them).

const BRUSH_WAIT_MS = 250; // a drag sends one brush, when it pauses

const COLUMN_TYPES = { f64: [8, Float64Array], f32: [4, Float32Array], str: [2, Uint16Array] };
const MISSING_CODE = 0xffff;

// Rows from the packed columns (chart_data.py): byte planes back to values, NaN to null.
function decodeRows(layout, raw, offset = 0) {
  const out = {};
  for (const part of layout) {
    const n = part.rows;
    const rows = Array.from({ length: n }, () => ({}));
    for (const col of part.columns) {
      const [size, Typed] = COLUMN_TYPES[col.type];
      const plain = new Uint8Array(n * size);
      for (let b = 0; b < size; b++) {
        const src = offset + b * n;
        for (let i = 0; i < n; i++) plain[i * size + b] = raw[src + i];
      }
      offset += n * size;
      const values = new Typed(plain.buffer);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        rows[i][col.name] = col.type === "str" ? (v === MISSING_CODE ? null : col.values[v]) : Number.isNaN(v) ? null : v;
      }
    }
    out[part.dataset] = rows;
  }
  return out;
}

async function unpackRows(layout, packed, { bytesOf, gunzip }) {
  const bytes = bytesOf(packed);
  if (!bytes || !bytes.length || !layout || !layout.length) return {};
  return decodeRows(layout, await gunzip(bytes));
}

// The rows from `tail.from` on are the tail's: a live chart's last bars, replaced or added.
// A live chart's tail may also say `keep`: rows before it have left the chart's window.
function outsideTail(layout) {
  const { field } = layout;
  const keep = layout.keep ?? -Infinity;
  return (row) => row[field] >= layout.from || row[field] < keep;
}

function withTail(datasets, tailLayout, tailRows) {
  if (!tailLayout || !tailLayout.dataset) return datasets;
  const { dataset } = tailLayout;
  const gone = outsideTail(tailLayout);
  const kept = (datasets[dataset] || []).filter((row) => !gone(row));
  return { ...datasets, [dataset]: kept.concat(tailRows[dataset] || []) };
}

function element(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function button(label, title, onClick) {
  const b = element("button", "apj-btn", label);
  b.title = title;
  b.addEventListener("click", onClick);
  return b;
}

function download(bytes, filename, mime) {
  const url = URL.createObjectURL(new Blob([bytes], { type: mime }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// PNG and SVG are the chart as the page shows it, brush and labels included, rendered by
// its own Vega view (so they need nothing in the kernel); the PNG at twice the size.
const PNG_SCALE = 2;
const IMAGE_MIME = { png: "image/png", svg: "image/svg+xml" };

async function renderImage(view, format) {
  if (format === "svg") return new TextEncoder().encode(await view.toSVG());
  const url = await view.toImageURL("png", PNG_SCALE); // a data: URL, base64
  return Uint8Array.from(atob(url.slice(url.indexOf(",") + 1)), (c) => c.charCodeAt(0));
}

// VS Code's notebook webviews do not save a download the way a browser tab does: there
// the export bar writes files through the kernel by default.
const IN_VSCODE = /\b(Code|Electron)\//.test(navigator.userAgent) || typeof globalThis.acquireVsCodeApi === "function";

// `currentView()`: the Vega view on screen, or null while none is drawn.
function exportBar(model, bytesOf, currentView) {
  const bar = element("div", "apj-export");
  const scope = element("select", "apj-scope");
  scope.title = "Export the whole frame or only the brushed range";
  for (const [value, label] of [["full", "full frame"], ["brush", "brushed range"]]) {
    const o = element("option", "", label);
    o.value = value;
    scope.appendChild(o);
  }
  const dest = element("select", "apj-dest");
  dest.title = "Download in the browser, or write the file into the kernel's working folder (for VS Code and remote kernels)";
  for (const [value, label] of [["download", "download"], ["file", "save to kernel folder"]]) {
    const o = element("option", "", label);
    o.value = value;
    dest.appendChild(o);
  }
  dest.value = IN_VSCODE ? "file" : "download";
  const status = element("span", "apj-export-status");
  const ask = (format) => () => {
    status.textContent = `preparing ${format}…`;
    model.send({ type: "export", format, scope: scope.value, dest: dest.value });
  };
  // Rendered here; then downloaded, or sent to the kernel to write (the same name and
  // folder as its own exports), as the data exports go.
  const image = (format) => async () => {
    const view = currentView();
    if (!view) {
      status.textContent = "error: the chart is not drawn yet";
      return;
    }
    status.textContent = `preparing ${format}…`;
    try {
      const bytes = await renderImage(view, format);
      if (dest.value === "file") {
        model.send({ type: "image", format, scope: scope.value }, undefined, [bytes]);
      } else {
        const stems = model.get("file_stems") || {};
        const filename = `${stems[scope.value] || stems.full || "chart"}.${format}`;
        download(bytes, filename, IMAGE_MIME[format]);
        status.textContent = `downloaded ${filename} (${bytes.length.toLocaleString()} bytes)`;
      }
    } catch (error) {
      status.textContent = `error: ${error.message}`;
      console.error("aperiodic-jupyter:", error);
    }
  };
  const name = element("input", "apj-varname");
  name.placeholder = "variable name";
  name.value = model.get("variable");
  name.size = 12;
  const toVariable = button("to variable", "Bind the data to this name in the kernel", () => {
    status.textContent = "";
    model.send({ type: "variable", name: name.value.trim(), scope: scope.value });
  });
  // No IPython kernel (marimo, plain Python): the frame goes onto the widget's `exported`,
  // written as a trait so that marimo re-runs the cells that read it.
  const toPython = button("to Python", "Put the data on the widget: .exported in Python", () => {
    const clicks = ((model.get("to_python") || {}).n || 0) + 1;
    model.set("to_python", { n: clicks, scope: scope.value });
    model.save_changes();
  });
  bar.append(
    document.createTextNode("Export "),
    scope,
    button("CSV", "Export the data as CSV", ask("csv")),
    button("Parquet", "Export the data as Parquet", ask("parquet")),
    button("PNG", "Export the chart as shown (brush included) as PNG", image("png")),
    button("SVG", "Export the chart as shown (brush included) as SVG", image("svg")),
    dest,
    name,
    toVariable,
    toPython,
    status,
  );
  const showTarget = () => {
    const ipython = model.get("has_namespace");
    name.style.display = toVariable.style.display = ipython ? "" : "none";
    toPython.style.display = ipython ? "none" : "";
  };
  const showBrush = (brushed) => {
    scope.querySelector('option[value="brush"]').disabled = !brushed;
    if (!brushed) scope.value = "full";
  };
  showTarget();
  model.on("change:has_namespace", showTarget);
  model.on("change:variable", () => {
    name.value = model.get("variable"); // each new frame suggests its own name
  });
  model.on("msg:custom", (msg, buffers) => {
    if (msg.type === "file" && buffers && buffers.length) {
      download(bytesOf(buffers[0]), msg.filename, msg.mime);
      status.textContent = `downloaded ${msg.filename} (${msg.size.toLocaleString()} bytes)`;
    } else if (msg.type === "status") {
      status.textContent = msg.text;
    }
  });
  return { bar, showBrush };
}

// Draws the model's chart into `el`: summary line (unless options.summary is false),
// chart, export bar. options: vegaEmbed, bytesOf, gunzip (js/loader.js). Returns a
// cleanup function.
export function renderPanel(model, el, options) {
  const { vegaEmbed } = options;
  el.classList.add("apj-flowpanel");
  const summary = element("div", "apj-summary");
  const chart = element("div", "apj-chart");
  const message = element("div", "apj-chart-message");
  let embedded = null; // vega-embed's result for the chart on screen
  const { bar, showBrush } = exportBar(model, options.bytesOf, () => embedded && embedded.view);
  if (options.summary !== false) el.append(summary);
  el.append(message, chart, bar);

  let brushTimer = null;
  let queue = Promise.resolve();

  const showSummary = () => {
    summary.textContent = model.get("summary");
    summary.classList.toggle("apj-demo", model.get("simulated"));
    summary.style.display = model.get("show_summary") && model.get("summary") ? "" : "none";
  };
  const setBrush = (range) => {
    showBrush(range.length === 2);
    const now = model.get("brush") || [];
    if (now.length === range.length && now.every((v, i) => v === range[i])) return;
    model.set("brush", range);
    model.save_changes();
  };
  const onBrush = (_name, value) => {
    clearTimeout(brushTimer);
    brushTimer = setTimeout(() => {
      const span = Object.values(value || {}).find((v) => Array.isArray(v) && v.length === 2);
      setBrush(span ? span.map(Number).sort((a, b) => a - b) : []);
    }, BRUSH_WAIT_MS);
  };

  const draw = async () => {
    const packedSpec = options.bytesOf(model.get("chart_spec"));
    const hasChart = Boolean(packedSpec && packedSpec.length);
    bar.style.display = hasChart ? "" : "none";
    if (embedded) {
      embedded.finalize();
      embedded = null;
    }
    chart.replaceChildren();
    if (!hasChart) return;
    message.textContent = "drawing the chart…";
    try {
      const [spec, rows, tail] = await Promise.all([
        options.gunzip(packedSpec).then((bytes) => JSON.parse(new TextDecoder().decode(bytes))),
        unpackRows(model.get("data_layout"), model.get("data"), options),
        unpackRows(model.get("tail_layout").columns ? [model.get("tail_layout")] : [], model.get("tail"), options),
      ]);
      const full = { ...spec, datasets: withTail(rows, model.get("tail_layout"), tail) };
      // Canvas, not SVG: Vega numbers SVG clip paths from 1 in every view, so a second
      // chart on the page would clip its marks to the first one's shapes.
      embedded = await vegaEmbed(chart, full, { renderer: "canvas", actions: false });
      embedded.view.addSignalListener("brush", onBrush);
      message.textContent = "";
      setBrush([]);
      if (model.get("drawn") !== model.get("charts")) {
        model.set("drawn", model.get("charts"));
        model.save_changes();
      }
    } catch (error) {
      message.textContent = `The chart could not be drawn: ${error.message}`;
      console.error("aperiodic-jupyter:", error);
    }
  };
  // Only the tail changed: swap the rows in the view instead of drawing anew.
  const applyTail = async () => {
    const layout = model.get("tail_layout");
    if (!embedded || !layout.columns) return; // a full draw is on its way, and reads the tail
    const tail = await unpackRows([layout], model.get("tail"), options);
    const { dataset } = layout;
    const view = embedded.view;
    view.change(dataset, view.changeset().remove(outsideTail(layout)).insert(tail[dataset] || []));
    await view.runAsync();
  };
  const enqueue = (job) => {
    queue = queue.then(job, job);
  };
  let pending = false;
  const redraw = () => {
    // The spec, rows and tail of one chart arrive as several change events: draw once.
    if (pending) return;
    pending = true;
    queueMicrotask(() => {
      pending = false;
      enqueue(draw);
    });
  };

  showSummary();
  for (const name of ["summary", "simulated", "show_summary"]) model.on(`change:${name}`, showSummary);
  model.on("change:charts", redraw);
  model.on("change:tail", () => enqueue(applyTail));
  redraw();
  return () => {
    clearTimeout(brushTimer);
    if (embedded) embedded.finalize();
  };
}
