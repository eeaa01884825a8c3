"""Measurement scripts, run from the repository root as `python -m benchmarks.NAME`;
results are written up in docs/benchmarks.md."""
