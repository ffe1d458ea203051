"""Sensitive-data detection for the agent runtime: the one implementation lives in
``agentops.redaction`` (the bottom layer, so knowledge retrieval and the logging filter redact
the same way); these names stay importable from here."""

from agentops.redaction import Redaction, luhn_ok, redact, redact_value

__all__ = ["Redaction", "luhn_ok", "redact", "redact_value"]
