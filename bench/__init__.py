"""Benchmarks, run on demand (`python -m bench`), never from the test suite.

Every figure is read as a ratio to a baseline measured in the same run: absolute numbers on
a shared 2-core machine move by tens of per cent from one minute to the next.
"""
