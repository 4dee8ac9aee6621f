"""Sandbox server class per destination type (list-destination sandboxes add one line each)."""

from __future__ import annotations

from activation_pipeline.sandbox.base import SandboxServer
from activation_pipeline.sandbox.braze import BrazeSandbox
from activation_pipeline.sandbox.iterable import IterableSandbox
from activation_pipeline.sandbox.webhook import WebhookSandbox

SANDBOXES: dict[str, type[SandboxServer]] = {
    "webhook": WebhookSandbox,
    "braze": BrazeSandbox,
    "iterable": IterableSandbox,
}
