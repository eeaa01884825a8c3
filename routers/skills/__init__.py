"""Symbolic-MoE skill-based recruiting: keywords -> model profiles -> recruited experts."""

from routers.skills.live import SkillsLiveParams, SkillsLiveRouter
from routers.skills.router import SkillsRouter

__all__ = ["SkillsLiveParams", "SkillsLiveRouter", "SkillsRouter"]
