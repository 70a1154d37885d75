"""Benchmarks, run on demand (`python -m bench`), never from the test suite: docs/performance.md."""
