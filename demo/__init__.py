"""Demo and test support: `make demo` (`python -m demo`) and the helpers that run a hub on this
machine for it, the benches and the end-to-end tests. Runtime packages never import it."""
