"""The errors every layer raises for a user to read: one clear line, no traceback.

They live at the package root, beside the registry, because every layer raises them and
none owns them; `signoria.errors` imports nothing of Signoria's.
"""

from __future__ import annotations


class SignoriaError(Exception):
    """Base of every error Signoria reports to a user as one clear line."""


class UnknownNameError(SignoriaError):
    """A name (model, backend, router, aggregator, pipeline) that no registry knows."""


class MissingExtraError(SignoriaError):
    """A strategy needs a package of an optional extra that is not installed."""


class ConfigError(SignoriaError):
    """A config file (or a server setting) that does not validate: a usage error, exit 2."""


class UsageError(SignoriaError):
    """A command-line value that is wrong in a way its type cannot say: exit 2."""
