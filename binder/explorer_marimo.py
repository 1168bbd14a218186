import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import marimo as mo

    import aperiodic_jupyter as aj

    return aj, mo


@app.cell
def _(mo):
    mo.md(
        """
        # Taker flow in marimo

        The explorer and the flow panel are anywidgets: wrap them in `mo.ui.anywidget`
        and every Load or brush re-runs the cells that read them. Without an API key the
        data is simulated (the demo source), and every view says so.

        Run it: `marimo run binder/explorer_marimo.py`
        """
    )
    return


@app.cell
def _(aj, mo):
    explorer = mo.ui.anywidget(aj.FlowExplorer("binance", "BTC", "1h", "2024-01..2024-02", panels="price,cvd,delta"))
    explorer
    return (explorer,)


@app.cell
def _(explorer, mo):
    # Re-runs after every Load (and every brush): explorer.df is the loaded frame.
    loaded = explorer.df
    brushed = explorer.brushed
    mo.md(
        "Click **Load** above."
        if loaded is None
        else f"Loaded rows: **{len(loaded):,}** · brushed rows: **{len(brushed):,}** · {loaded.attrs['query']['symbol']}"
    )
    return


@app.cell
def _(mo):
    mo.md(
        """
        ## The `%flow` line, as a function

        `aj.flow("…")` takes everything `%flow` takes and returns the same panel. Drag across
        the strip under the chart: the cell below follows the brush.
        """
    )
    return


@app.cell
def _(aj, mo):
    venues = mo.ui.anywidget(aj.flow("binance,okx BTC 1h 2024-11"))
    venues
    return (venues,)


@app.cell
def _(mo, venues):
    share = venues.brushed.groupby("exchange")["volume_delta_notional"].sum()
    mo.md(
        f"Net taker delta in the brushed range ({len(venues.brushed):,} rows): "
        + ", ".join(f"{venue} **{delta:,.0f}**" for venue, delta in share.items())
    )
    return


if __name__ == "__main__":
    app.run()
