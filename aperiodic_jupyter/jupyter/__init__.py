"""The Jupyter front end: the ``%flow`` magic, the explorer widget, the flow panel with
its charts and export bar. It only calls the core; the JavaScript lives in ``js/``."""
