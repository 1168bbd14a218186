#!/bin/sh
# Rebuilds js/vega.bundle.js: Vega, Vega-Lite and Vega-Embed as one minified ES module
# (exports vegaEmbed and vega), and js/vega.LICENSES.txt, the licenses of everything in it.
# Needs node and npm, and the npm registry at build time only; nothing is fetched at run
# time. The versions are pinned here: Vega-Lite matches the schema Altair writes
# (alt.SCHEMA_VERSION), Vega-Embed the one Altair's JupyterChart loads.
set -eu
cd "$(dirname "$0")"
out="$(pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/package.json" <<'EOF'
{ "private": true,
  "dependencies": { "vega": "6.4.0", "vega-lite": "6.4.1", "vega-embed": "7.0.2", "esbuild": "0.25.12" } }
EOF
cat > "$work/entry.js" <<'EOF'
export { default as vegaEmbed } from "vega-embed";
export * as vega from "vega";
EOF
(cd "$work" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
versions="$(cd "$work" && node -p "['vega', 'vega-lite', 'vega-embed'].map((p) => p + ' ' + require('./node_modules/' + p + '/package.json').version).join(', ')")"
(cd "$work" && node_modules/.bin/esbuild entry.js --bundle --minify --format=esm --legal-comments=eof \
  --metafile=meta.json --log-level=warning --outfile=bundle.js)
{ echo "// $versions: built by js/build_vega.sh (licenses: js/vega.LICENSES.txt)"; cat "$work/bundle.js"; } > "$out/vega.bundle.js"
# One license text per bundled package, in the order esbuild met them.
(cd "$work" && node -e '
const fs = require("fs");
const inputs = Object.keys(require("./meta.json").inputs);
const dirs = [...new Set(inputs.filter((k) => k.includes("node_modules/")).map((k) => {
  const rest = k.split("node_modules/").pop().split("/");
  return k.slice(0, k.lastIndexOf("node_modules/")) + "node_modules/" + rest.slice(0, rest[0].startsWith("@") ? 2 : 1).join("/");
}))];
const parts = dirs.map((d) => {
  const pkg = require("./" + d + "/package.json");
  const file = fs.readdirSync(d).find((f) => /^licen[cs]e/i.test(f));
  return `== ${pkg.name} ${pkg.version} (${pkg.license}) ==\n` + (file ? fs.readFileSync(d + "/" + file, "utf8").trim() : "(no license file shipped)");
});
process.stdout.write(`Licenses of the packages bundled into vega.bundle.js (${process.argv[1]})\n\n` + parts.join("\n\n") + "\n");
' "$versions") > "$out/vega.LICENSES.txt"
echo "wrote $out/vega.bundle.js ($versions)"
