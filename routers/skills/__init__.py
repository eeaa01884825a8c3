"""Symbolic-MoE skill-based recruiting: keywords -> model profiles -> recruited experts."""

from signoria.routers.skills.live import SkillsLiveParams, SkillsLiveRouter
from signoria.routers.skills.router import SkillsRouter

__all__ = ["SkillsLiveParams", "SkillsLiveRouter", "SkillsRouter"]
