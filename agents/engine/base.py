"""What every part of the engine shares: the transient-error signal and the arguments hash."""

from __future__ import annotations

import hashlib
import json
from typing import Any


class TransientStepError(Exception):
    """A dependency of the step failed in a way that may heal: retry the step later."""


def args_hash(args: dict[str, Any]) -> str:
    """The hash that binds a tool call (and its approval) to exactly these arguments."""
    return hashlib.sha256(json.dumps(args, sort_keys=True, default=str).encode()).hexdigest()
