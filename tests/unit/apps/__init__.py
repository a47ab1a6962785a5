"""Small importable applications for the loader and CLI tests (on sys.path via --pythonpath)."""
