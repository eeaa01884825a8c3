"""Experts and the model pool: types, backends, embedded models, sources, the backend
registry. Imports nothing from routers, orchestrator or evals; imports nothing at all
here, so that importing one module of it costs only that module."""
