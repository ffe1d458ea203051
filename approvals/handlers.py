"""Decision handlers: whoever opens approval requests registers a function by name.

A handler is called as ``handler(request)`` inside the deciding transaction, after the
request row has its final status; it must only enqueue follow-up work after commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_HANDLERS: dict[str, Callable] = {}


def register(name: str, handler: Callable) -> None:
    _HANDLERS[name] = handler


def get(name: str) -> Callable:
    try:
        return _HANDLERS[name]
    except KeyError:
        raise LookupError(f"No approval handler named {name!r} is registered") from None


# Optional per-handler checks of edited arguments (edit-then-approve). Whoever registers a
# handler knows what its arguments must look like; approvals does not. A validator returns
# human-readable problems; an empty list means the arguments may be approved.
Validator = Callable[[Any, dict], list[str]]
_VALIDATORS: dict[str, Validator] = {}


def register_validator(name: str, validator: Validator) -> None:
    _VALIDATORS[name] = validator


def validator_for(name: str) -> Validator | None:
    return _VALIDATORS.get(name)
