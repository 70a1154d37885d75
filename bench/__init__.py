"""Benchmark scripts, run on demand (never from the test suite).

Run them from the repository root as modules, e.g. ``.venv/bin/python -m bench.run_baselines``;
see ``bench/README.md``. Every figure is meant to be read as a ratio against a baseline
measured in the same run, because absolute numbers on a shared 2-core machine are noisy.
"""
