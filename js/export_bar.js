// The export toolbar under every flow panel (magic and explorer alike).
// Buttons ask the kernel for bytes; the kernel answers with a binary buffer that the
// browser saves as a file. No data travels as JSON and nothing is fetched from a CDN.

function button(label, title, onClick) {
  const b = document.createElement("button");
  b.className = "apj-btn";
  b.textContent = label;
  b.title = title;
  b.addEventListener("click", onClick);
  return b;
}

function download(bytes, filename, mime) {
  const blob = new Blob([bytes], { type: mime });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function render({ model, el }) {
  el.classList.add("apj-export");
  const scope = document.createElement("select");
  scope.className = "apj-scope";
  scope.title = "Export the whole frame or only the brushed range";
  for (const [value, label] of [["full", "full frame"], ["brush", "brushed range"]]) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = label;
    scope.appendChild(o);
  }
  const ask = (format) => () => {
    status.textContent = `preparing ${format}…`;
    model.send({ type: "export", format, scope: scope.value });
  };
  const name = document.createElement("input");
  name.className = "apj-varname";
  name.placeholder = "variable name";
  name.value = model.get("variable");
  name.size = 12;
  const status = document.createElement("span");
  status.className = "apj-status";

  el.append(
    document.createTextNode("Export "),
    scope,
    button("CSV", "Download the data as CSV", ask("csv")),
    button("Parquet", "Download the data as Parquet", ask("parquet")),
    button("PNG", "Download the chart as PNG", ask("png")),
    button("SVG", "Download the chart as SVG", ask("svg")),
    name,
    button("to variable", "Bind the data to this name in the kernel", () => {
      status.textContent = "";
      model.send({ type: "variable", name: name.value.trim(), scope: scope.value });
    }),
    status,
  );

  const syncBrush = () => {
    const has = model.get("has_brush");
    scope.querySelector('option[value="brush"]').disabled = !has;
    if (!has) scope.value = "full";
  };
  syncBrush();
  model.on("change:has_brush", syncBrush);

  model.on("msg:custom", (msg, buffers) => {
    if (msg.type === "file" && buffers && buffers.length) {
      download(buffers[0], msg.filename, msg.mime);
      status.textContent = `saved ${msg.filename} (${msg.size.toLocaleString()} bytes)`;
    } else if (msg.type === "status") {
      status.textContent = msg.text;
    }
  });
}

export default { render };
