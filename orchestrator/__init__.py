"""Pipelines, aggregators, limits, budgets, the SDK, the REST server, storage and the CLI.

The SDK's names are re-exported, lazily, by the top package: `from signoria import
Orchestrator`. Nothing is imported here, so `signoria --help` does not pay for them.
"""
