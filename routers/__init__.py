"""Routers: which experts answer a query (the protocol, the registry, each router and its
training). May import `signoria.agents`, nothing above it; imports nothing here."""
