// The live panel (LivePanel in live_panel.py): a Stop button and the live state line
// (`live · last bar 12:03:00 UTC · 2 s ago`, `reconnecting (attempt 2)`, `stopped`...)
// above the flow panel, whose chart takes each batch of bars as a tail (js/chart_view.js).
// The kernel puts js/loader.js in front of this file (mountPanel).

export default {
  render({ model, el }) {
    const head = document.createElement("div");
    head.className = "apj-live";
    const stop = document.createElement("button");
    stop.className = "apj-btn apj-stop";
    stop.textContent = "Stop";
    stop.title = "Stop following the market: the connection closes, the chart and p.df keep the bars received";
    const label = document.createElement("span");
    label.className = "apj-demo apj-live-label";
    const state = document.createElement("span");
    state.className = "apj-status apj-live-state";
    head.append(stop, label, state);
    const body = document.createElement("div");
    el.append(head, body);

    const show = () => {
      state.textContent = model.get("live_state");
      label.textContent = model.get("simulated") ? "SIMULATED demo feed" : "";
      stop.disabled = !model.get("live_running");
    };
    stop.addEventListener("click", () => {
      stop.disabled = true;
      model.send({ type: "stop" });
    });
    for (const name of ["live_state", "live_running", "simulated"]) model.on(`change:${name}`, show);
    show();
    const cleanup = mountPanel(model, body);
    return () => {
      for (const name of ["live_state", "live_running", "simulated"]) model.off(`change:${name}`, show);
      cleanup();
    };
  },
};
