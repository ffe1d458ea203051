"""Decision handlers: whoever opens approval requests registers a function by name.

A handler is called as ``handler(request)`` inside the deciding transaction, after the
request row has its final status; it must only enqueue follow-up work after commit.
"""

from __future__ import annotations

from collections.abc import Callable

_HANDLERS: dict[str, Callable] = {}


def register(name: str, handler: Callable) -> None:
    _HANDLERS[name] = handler


def get(name: str) -> Callable:
    try:
        return _HANDLERS[name]
    except KeyError:
        raise LookupError(f"No approval handler named {name!r} is registered") from None
