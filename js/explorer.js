// The explorer (FlowExplorer in explorer.py): exchange, symbol, interval, range,
// timestamp, source, panels, the Live toggle, Load, Cancel and Stop; progress, status
// (a live view's state line), error and summary; then
// the chart and export bar of the last load (mountPanel, from js/loader.js, which the
// kernel puts in front of this file). Every field is a synced trait; Load asks the
// kernel to fetch. The kernel answers through traits (progress, status, error, summary,
// the chart), so a saved notebook still shows the last query, its summary and its chart
// without a kernel.

function field(label, control) {
  const l = document.createElement("label");
  l.append(document.createTextNode(label), control);
  return l;
}

function input(className, value, size) {
  const i = document.createElement("input");
  i.className = className;
  i.value = value;
  i.size = size;
  return i;
}

function select(className, options, value) {
  const s = document.createElement("select");
  s.className = className;
  for (const o of options) {
    const opt = document.createElement("option");
    opt.value = o;
    opt.textContent = o;
    s.appendChild(opt);
  }
  s.value = value;
  return s;
}

function render({ model, el }) {
  el.classList.add("apj-explorer");
  const uid = Math.random().toString(36).slice(2);

  // Venues: several may be chosen (ctrl/cmd-click); the model holds them comma-separated.
  const exchange = select("apj-exchange", model.get("exchanges"), "");
  exchange.multiple = true;
  exchange.size = Math.min(model.get("exchanges").length, 4);
  const venues = () => [...exchange.selectedOptions].map((o) => o.value).join(",");
  const showVenues = () => {
    const chosen = new Set(model.get("exchange").split(","));
    for (const o of exchange.options) o.selected = chosen.has(o.value);
  };
  showVenues();
  const symbol = input("apj-symbol", model.get("symbol"), 16);
  const list = document.createElement("datalist");
  list.id = `apj-symbols-${uid}`;
  symbol.setAttribute("list", list.id);
  const interval = select("apj-interval", model.get("intervals"), model.get("interval"));
  const range = input("apj-range", model.get("range_text"), 22);
  range.placeholder = "2024-01..2024-03";
  const timestamp = select("apj-timestamp", model.get("timestamps"), model.get("timestamp"));
  const source = select("apj-source", model.get("sources"), model.get("source"));
  const load = document.createElement("button");
  load.className = "apj-btn apj-load";
  load.textContent = "Load";
  const cancel = document.createElement("button");
  cancel.className = "apj-btn apj-cancel";
  cancel.textContent = "Cancel";
  cancel.style.display = "none";
  cancel.addEventListener("click", () => model.send({ type: "cancel" }));
  // Live: Load follows the market (history, then each bar) instead of fetching the range.
  const live = document.createElement("input");
  live.type = "checkbox";
  live.className = "apj-live-toggle";
  live.title = "Follow the market: recent history, then each new bar as it is published";
  const stop = document.createElement("button");
  stop.className = "apj-btn apj-stop";
  stop.textContent = "Stop";
  stop.title = "Stop following the market: the chart keeps the bars received";
  stop.style.display = "none";
  stop.addEventListener("click", () => {
    stop.disabled = true;
    model.send({ type: "stop" });
  });

  const progress = document.createElement("progress");
  progress.className = "apj-progress";
  const status = document.createElement("span");
  status.className = "apj-status";
  const error = document.createElement("div");
  error.className = "apj-error";
  const summary = document.createElement("div");
  summary.className = "apj-summary";

  const row1 = document.createElement("div");
  row1.className = "apj-row";
  row1.append(
    field("exchange", exchange),
    field("symbol", symbol),
    list,
    field("interval", interval),
    field("range (UTC)", range),
    field("live", live),
    field("timestamp", timestamp),
    field("source", source),
    load,
    cancel,
    stop,
  );
  // Panels: one checkbox each, in drawing order; the kernel validates the choice.
  const panelRow = document.createElement("div");
  panelRow.className = "apj-row apj-panels";
  panelRow.append(document.createTextNode("panels"));
  const boxes = model.get("panel_options").map((name) => {
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = name;
    box.className = `apj-panel apj-panel-${name}`;
    const l = document.createElement("label");
    l.append(box, document.createTextNode(name));
    panelRow.append(l);
    box.addEventListener("change", () => {
      model.set("panels", boxes.filter((b) => b.checked).map((b) => b.value));
      model.save_changes();
    });
    return box;
  });
  const showPanels = () => {
    const chosen = new Set(model.get("panels"));
    for (const b of boxes) b.checked = chosen.has(b.value);
  };
  showPanels();
  model.on("change:panels", showPanels);

  const row2 = document.createElement("div");
  row2.className = "apj-row";
  row2.append(progress, status);
  const chart = document.createElement("div");
  el.append(row1, panelRow, row2, error, summary, chart);

  const bind = (control, name, event = "change") => {
    control.addEventListener(event, () => {
      model.set(name, control.value);
      model.save_changes();
    });
    model.on(`change:${name}`, () => {
      if (control.value !== model.get(name)) control.value = model.get(name);
    });
  };
  exchange.addEventListener("change", () => {
    model.set("exchange", venues());
    model.save_changes();
  });
  model.on("change:exchange", showVenues);
  bind(symbol, "symbol", "input");
  bind(interval, "interval");
  bind(range, "range_text", "input");
  bind(timestamp, "timestamp");
  bind(source, "source");

  const fillSymbols = () => {
    list.replaceChildren(
      ...model.get("symbol_options").map((s) => {
        const o = document.createElement("option");
        o.value = s;
        return o;
      }),
    );
  };
  const showProgress = () => {
    const total = model.get("progress_total");
    const done = model.get("progress_done");
    const cached = model.get("progress_cached");
    progress.max = Math.max(total, 1);
    progress.value = done;
    progress.style.visibility = total ? "visible" : "hidden";
    const loading = model.get("loading");
    const following = model.get("live_running");
    load.disabled = loading || following;
    cancel.style.display = loading && !following ? "" : "none";
    stop.style.display = following ? "" : "none";
    stop.disabled = false;
    live.checked = model.get("live");
    range.disabled = model.get("live");
    const months = total ? `${done} of ${total} months` + (cached ? ` (${cached} from cache)` : "") : "";
    status.textContent = [model.get("status"), months].filter(Boolean).join(" · ");
  };
  const showText = () => {
    error.textContent = model.get("error");
    summary.textContent = model.get("summary");
    summary.classList.toggle("apj-demo", model.get("simulated"));
  };
  fillSymbols();
  showProgress();
  showText();
  model.on("change:symbol_options", fillSymbols);
  live.addEventListener("change", () => {
    model.set("live", live.checked);
    model.save_changes();
  });
  for (const name of ["progress_total", "progress_done", "progress_cached", "status", "loading", "live", "live_running"]) {
    model.on(`change:${name}`, showProgress);
  }
  for (const name of ["error", "summary", "simulated"]) model.on(`change:${name}`, showText);

  const submit = () => {
    // Send the fields with the request: a debounced trait sync may not have landed yet.
    model.send({
      type: "load",
      query: {
        exchange: venues(),
        symbol: symbol.value,
        interval: interval.value,
        range_text: range.value,
        timestamp: timestamp.value,
        source: source.value,
        panels: boxes.filter((b) => b.checked).map((b) => b.value),
        live: live.checked,
      },
    });
  };
  load.addEventListener("click", submit);
  for (const input of [symbol, range]) {
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") submit();
    });
  }
  return mountPanel(model, chart, { summary: false });
}

export default { render };
