"""IBVI benchmarks, run from the repository root as ``python -m benchmarks.ibvi.<script>``."""
