"""The one exception of the deployment runner."""

from __future__ import annotations


class DeploymentError(Exception):
    """A deployment cannot be loaded, started or run; the message says why, for the operator."""
