"""The OpenAI-compatible REST server (`signoria serve`).

Nothing is imported here on purpose: the CLI imports `orchestrator.server.command` at
startup, and FastAPI/uvicorn must only load when the server actually runs. Use
`orchestrator.server.app.create_app` and `orchestrator.server.settings.ServerSettings`.
"""
