"""Errors of the expert layer that callers are expected to catch and report."""

from __future__ import annotations


class SignoriaError(Exception):
    """Base of every error Signoria reports to a user as one clear line."""


class ModelFileError(SignoriaError):
    """A model file is missing, unverifiable or not the pinned one."""


class UnknownNameError(SignoriaError):
    """A name (model, backend, router, aggregator, pipeline) that no registry knows."""
