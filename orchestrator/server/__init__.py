"""The OpenAI-compatible REST server.

Nothing is imported here on purpose: FastAPI and uvicorn load only when the server runs.
Use `signoria.orchestrator.server.app.create_app` and
`signoria.orchestrator.server.settings.ServerSettings`.
"""
