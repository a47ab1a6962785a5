"""Benchmark suite for corral against its peers (run with `python benchmarks/run.py`)."""
