"""One module per kind of `--data` spec; each returns a sample source (see ..dataset)."""
