"""The core: a validated query goes through one client to the cache and a source, and
comes back as one frame. No Jupyter here: scripts, the CLI and both front ends use it."""
