"""Aggregators: many completions in, one answer out. Each is a module registered by name
in `signoria.orchestrator.aggregators.registry`."""
