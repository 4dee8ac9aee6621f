"""Secrets are `{env: NAME}` references, resolved from the environment only when they are needed."""

from __future__ import annotations

import os
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from activation_pipeline.errors import ConfigurationError

RESOLVED: set[str] = set()
"""Every secret value this process has read: what is stored (ledger responses, reasons) is redacted of them."""


class MissingSecretError(ConfigurationError, RuntimeError):
    """An environment variable that a secret reference names is not set."""


class SecretRef(BaseModel):
    """A reference to a secret held in an environment variable; the file never holds the value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="name of the environment variable")

    def resolve(self, where: str = "") -> str:
        """Return the secret's value, or raise MissingSecretError naming the variable (never a value)."""
        value = os.environ.get(self.env)
        if value is None or value == "":
            place = f"{where}: " if where else ""
            raise MissingSecretError(f"{place}environment variable {self.env} is not set")
        RESOLVED.add(value)
        return value

    def __repr__(self) -> str:
        return f"SecretRef(env={self.env!r})"


def _require_env_reference(value: Any) -> Any:
    if isinstance(value, str):
        raise ValueError(
            "secrets come only from environment variables: write {env: VARIABLE_NAME}, not the value"
        )
    return value


Secret = Annotated[SecretRef, BeforeValidator(_require_env_reference)]
