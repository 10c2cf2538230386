"""Support code for logitdiff's tests and benchmarks; not part of the `logitdiff` package (not in the wheel).

Importable from the repository root: pytest puts the root on sys.path (`pythonpath` in pyproject.toml),
and the benchmark scripts insert it themselves.
"""
