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


# Optional per-handler "where is the subject now" for the queue: ``describer(requests)`` gets
# the page's requests of that handler and returns {request pk: a short sentence} in one query
# (for a run: "The run is waiting for this decision", "The run ended: succeeded"). The stored
# evidence is a snapshot from when the request was opened; this says what is true now.
Describer = Callable[[list], dict[int, str]]
_DESCRIBERS: dict[str, Describer] = {}


def register_describer(name: str, describer: Describer) -> None:
    _DESCRIBERS[name] = describer


def describe(requests: list) -> dict[int, str]:
    """Sentences for ``requests`` from their handlers' describers (none: no sentence)."""
    found: dict[int, str] = {}
    by_handler: dict[str, list] = {}
    for request in requests:
        by_handler.setdefault(request.handler, []).append(request)
    for name, group in by_handler.items():
        describer = _DESCRIBERS.get(name)
        if describer is not None:
            found.update(describer(group))
    return found
