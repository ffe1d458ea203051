"""``{{ text|redacted }}``: what a person typed, shown without the secrets in it.

A requester who writes "my password is …" in a ticket should not have it shown to every
agent who opens the ticket; the stored text is kept as written (the agent runtime redacts its
own copy and records a guardrail event), the page shows it redacted (agentops.redaction).
"""

from django import template

from agentops.redaction import redact

register = template.Library()


@register.filter
def redacted(value) -> str:
    return redact(str(value or "")).text
