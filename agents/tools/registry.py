"""The registry of tools the agents may call, and validation of their arguments.

``register(tool)`` at start-up (``agents.tools.builtin.register_builtin_tools()``, and the
incidents app for its ticket tools), then ``get(name)``, ``all_tools()``, ``specs(names)``
for the model, and ``validate_args(tool, args)`` before anything runs: the model's arguments
are untrusted input, checked against the tool's JSON schema (Draft 2020-12, formats on).
"""

from __future__ import annotations

import re
import threading
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from agents.llm.base import ToolSpec
from agents.tools.base import Tool

TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]{1,63}$")

_lock = threading.Lock()
_tools: dict[str, Tool] = {}
_validators: dict[str, tuple[int, Draft202012Validator]] = {}


def register(tool: Tool) -> Tool:
    """Add ``tool`` (an instance). Registering the same class again replaces it (idempotent);
    another class under a taken name is a programming error."""
    if not isinstance(tool, Tool):
        raise TypeError(f"register() takes a Tool instance, got {type(tool).__name__}")
    if not TOOL_NAME.match(tool.name or ""):
        raise ValueError(f"invalid tool name {tool.name!r}: use lower_snake_case")
    if not tool.description.strip():
        raise ValueError(f"tool {tool.name!r} needs a description (the model reads it)")
    schema = tool.input_schema
    Draft202012Validator.check_schema(schema)
    if schema.get("type") != "object":
        raise ValueError(f"tool {tool.name!r}: the input schema must describe an object")
    with _lock:
        existing = _tools.get(tool.name)
        if existing is not None and type(existing) is not type(tool):
            raise ValueError(
                f"tool name {tool.name!r} is already registered by "
                f"{type(existing).__module__}.{type(existing).__qualname__}"
            )
        _tools[tool.name] = tool
        _validators.pop(tool.name, None)
    return tool


def unregister(name: str) -> None:
    """Remove a tool (tests)."""
    with _lock:
        _tools.pop(name, None)
        _validators.pop(name, None)


def get(name: str) -> Tool:
    try:
        return _tools[name]
    except KeyError:
        known = ", ".join(sorted(_tools)) or "none registered"
        raise KeyError(f"unknown tool {name!r}; known tools: {known}") from None


def all_tools() -> list[Tool]:
    return [_tools[name] for name in sorted(_tools)]


def specs(names: list[str] | None = None, *, tenant=None) -> list[ToolSpec]:
    """What the model is told about the tools: all of them, or those named (in that order);
    with ``tenant``, each tool's schema as that tenant sees it (``Tool.schema_for``)."""
    tools = all_tools() if names is None else [get(name) for name in names]
    return [ToolSpec(t.name, t.description, _schema(t, tenant)) for t in tools]


def _schema(tool: Tool, tenant) -> dict[str, Any]:
    return tool.input_schema if tenant is None else tool.schema_for(tenant)


# --------------------------------------------------------------------------- validation


def _validator(tool: Tool) -> Draft202012Validator:
    # Cached per registered tool; a tool whose schema object changed gets a fresh one.
    cached = _validators.get(tool.name)
    if cached is not None and cached[0] == id(tool.input_schema) and _tools.get(tool.name) is tool:
        return cached[1]
    validator = Draft202012Validator(
        tool.input_schema, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    if _tools.get(tool.name) is tool:
        _validators[tool.name] = (id(tool.input_schema), validator)
    return validator


_JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _field(error: ValidationError) -> str:
    path = ".".join(str(part) for part in error.absolute_path)
    return path or "arguments"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _messages(error: ValidationError) -> list[str]:
    """One or more readable sentences for one schema violation, each naming the field."""
    field = _field(error)
    kind = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    if kind == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        prefix = "" if field == "arguments" else f"{field}."
        return [f"{prefix}{name}: this field is required" for name in missing]
    if kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extras = [name for name in error.instance if name not in allowed]
        prefix = "" if field == "arguments" else f"{field}."
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return [f"{prefix}{name}: unexpected field{hint}" for name in sorted(extras)]
    if kind == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return [f"{field}: must be of type {expected}, got {_json_type(error.instance)}"]
    if kind == "enum":
        options = ", ".join(str(option) for option in error.validator_value)
        return [f"{field}: must be one of {options} (got {_short(error.instance)})"]
    if kind == "const":
        return [f"{field}: must be {error.validator_value!r}"]
    if kind == "format":
        return [f"{field}: {_short(error.instance)} is not a valid {error.validator_value}"]
    if kind == "pattern":
        hint = schema.get("description") or f"the pattern {error.validator_value}"
        return [f"{field}: {_short(error.instance)} has the wrong format; expected {hint}"]
    if kind == "minLength":
        if error.validator_value == 1:
            return [f"{field}: must not be empty"]
        return [f"{field}: must be at least {error.validator_value} characters long"]
    if kind == "maxLength":
        return [f"{field}: must be at most {error.validator_value} characters long"]
    if kind == "minimum":
        return [f"{field}: must be at least {error.validator_value} (got {error.instance})"]
    if kind == "maximum":
        return [f"{field}: must be at most {error.validator_value} (got {error.instance})"]
    return [f"{field}: {error.message}"]


def validate_args(tool: Tool, args: Any, *, tenant=None) -> list[str]:
    """Human-readable problems with ``args`` for ``tool`` (as ``tenant`` sees it, when given:
    ``Tool.schema_for``); an empty list means valid."""
    if not isinstance(args, dict):
        return [f"arguments: must be a JSON object, got {_json_type(args)}"]
    schema = _schema(tool, tenant)
    validator = (
        _validator(tool)
        if schema is tool.input_schema
        else Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    )
    errors = sorted(
        validator.iter_errors(args),
        key=lambda e: (list(map(str, e.absolute_path)), e.validator),
    )
    # A value failing both its format and its pattern gets one message, not two.
    with_format = {tuple(e.absolute_path) for e in errors if e.validator == "format"}
    messages: list[str] = []
    for error in errors:
        if error.validator == "pattern" and tuple(error.absolute_path) in with_format:
            continue
        for message in _messages(error):
            if message not in messages:
                messages.append(message)
    return messages
