"""Routers by name. A new router is one module, one `register` line here and one test."""

from __future__ import annotations

from agents.plugins import Registry, Strategy
from routers.fixed import FixedRouter, FixedRouterParams
from routers.protocol import Router

ROUTERS: Registry[Strategy[Router]] = Registry("router")

ROUTERS.register("fixed", Strategy(params=FixedRouterParams, build=FixedRouter))
