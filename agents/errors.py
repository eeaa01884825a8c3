"""Errors of the expert layer that callers are expected to catch and report."""

from __future__ import annotations

from signoria.errors import SignoriaError


class ModelFileError(SignoriaError):
    """A model file is missing, unverifiable or not the pinned one."""
