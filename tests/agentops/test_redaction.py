"""Redaction: free-text passwords, contextual national ids, passwords in commands, idempotence,
and the logging filter installed in the settings."""

from __future__ import annotations

import io
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentops.redaction import RedactingFilter, redact

SECRET_CASES = [
    ("my password is Hunter22!", "Hunter22!"),
    ("My password is: Tr0ub4dor&3 and it does not work", "Tr0ub4dor&3"),
    ("the VPN password for bob was 'correct horse battery'", "correct horse battery"),
    ("Please set it back to 'Summer2024!' so I can log in", "Summer2024!"),
    ("can you change it to “Winter#99” again", "Winter#99"),
    ("my new password would be Zebra-Lamp-42", "Zebra-Lamp-42"),
    ("pin: 4821", "4821"),
    ("mysql -u root -p S3cretPass mydb", "S3cretPass"),
    ("mysql -u root -pS3cretPass mydb", "S3cretPass"),
    ("sshpass -p 'hunter2x' ssh admin@host", "hunter2x"),
    ("run ./deploy --password=Gr33nTea! --env prod", "Gr33nTea!"),
    ("curl --token abc123def456 https://x", "abc123def456"),
    ("export DB_PASSWORD=pa55w0rd-db", "pa55w0rd-db"),
    ("connect to postgres://app:Sup3rS3cret@db.internal/app", "Sup3rS3cret"),
    ("api key: 9f8e7d6c5b4a", "9f8e7d6c5b4a"),
]


@pytest.mark.parametrize(("text", "secret"), SECRET_CASES, ids=[c[0][:30] for c in SECRET_CASES])
def test_secrets_in_free_text_and_commands_are_redacted(text, secret):
    result = redact(text)

    assert secret not in result.text, result.text
    assert "[REDACTED secret]" in result.text
    assert "secret" in result.findings


@pytest.mark.parametrize(
    "text",
    [
        "My password is expired and I cannot log in",
        "my password is not working since Monday",
        "The password policy requires 12 characters",
        "ssh -p 2222 admin@host",
        "docker run -p 8080:80 nginx",
        "mkdir -p /var/log/app",
        "Order 123456789 has not arrived",
        "Employee number 123456789 needs a laptop",
        "I forgot my password",
    ],
)
def test_ordinary_text_about_passwords_and_numbers_survives(text):
    assert redact(text).text == text


@pytest.mark.parametrize(
    "text",
    [
        "My SSN is 123456789",
        "social security number: 123 45 6789",
        "national id number 987654321 for the HR form",
        "Tax ID #123456789",
    ],
)
def test_a_nine_digit_national_id_is_redacted_where_the_text_says_so(text):
    result = redact(text)

    assert "[REDACTED national id]" in result.text
    digits = "".join(ch for ch in text if ch.isdigit())
    assert digits not in "".join(ch for ch in result.text if ch.isdigit())


ALL_CASES = [t for t, _ in SECRET_CASES] + [
    "password is hunter22 and card 4111 1111 1111 1111, ssn 123-45-6789, token sk-ant-" + "a" * 20,
    "password: [REDACTED secret]",
]


@pytest.mark.parametrize("text", ALL_CASES)
def test_redaction_is_idempotent_and_never_renders_a_marker_twice(text):
    once = redact(text).text
    twice = redact(once).text

    assert twice == once
    assert "] secret]" not in twice and "]]" not in twice


def test_the_double_render_bug_is_gone():
    # The ticket text is redacted, then the step summary that quotes it is redacted again.
    once = redact("my password is hunter22").text
    assert once == "my password is [REDACTED secret]"
    assert redact(f"Triage of: {once}").text == f"Triage of: {once}"


def _configured_handler():
    """The root handler the settings' LOGGING installed (the one that writes the logs)."""
    for handler in logging.getLogger().handlers:
        if any(isinstance(f, RedactingFilter) for f in handler.filters):
            return handler
    raise AssertionError("no handler with the RedactingFilter: check settings LOGGING")


def test_the_settings_logging_filter_keeps_secrets_out_of_the_logs():
    handler = _configured_handler()
    stream = io.StringIO()
    old = handler.setStream(stream)
    try:
        log = logging.getLogger("incidents.pipeline")
        log.warning("ticket text: %s", "my password is Canary-Pw-7781")
        log.error("card %s", "4111 1111 1111 1111")
        try:
            raise ValueError("connect failed for postgres://app:Canary-Db-5521@db/app")
        except ValueError:
            log.exception("step failed")
    finally:
        handler.setStream(old)

    written = stream.getvalue()
    assert "ticket text: my password is [REDACTED secret]" in written
    assert "Canary-Pw-7781" not in written
    assert "4111 1111 1111 1111" not in written
    assert "Canary-Db-5521" not in written
    assert "ValueError" in written  # the traceback is still there, redacted


def test_a_celery_workers_own_log_handlers_redact_too():
    from celery.signals import after_setup_logger, after_setup_task_logger

    import agentops.celery  # noqa: F401  (connects the signal receivers)

    for signal in (after_setup_logger, after_setup_task_logger):
        logger = logging.Logger(f"worker-{signal.name}")
        stream = io.StringIO()
        logger.addHandler(logging.StreamHandler(stream))
        signal.send(sender=None, logger=logger, loglevel=logging.INFO, logfile=None, format="")

        logger.warning("reset done, the new password is Canary-Worker-5512")

        assert "Canary-Worker-5512" not in stream.getvalue()
        assert "[REDACTED secret]" in stream.getvalue()


def test_djangos_own_loggers_write_only_through_the_redacting_handler():
    assert logging.getLogger("django").handlers == []
    # (pytest adds capture handlers of its own beside the configured ones: leave those out.)
    streams = [
        h for h in logging.getLogger("django.server").handlers if type(h).__module__ == "logging"
    ]
    assert streams
    for handler in streams:
        assert any(isinstance(f, RedactingFilter) for f in handler.filters)


# Pieces of text: plain words, digits, and every kind of secret the patterns look for, so the
# generated texts hit each pattern (and each gate) both ways.
_PIECES = [
    "my", "password", "is", "hunter2", "PIN:", "1234", "card", "4111 1111 1111 1111", "ssn",
    "123-45-6789", "123456789", "export", "DB_PASSWORD=s3cr3t", "mysql", "-pS3cret", "-p", "22",
    "https://bob:pa55@host/x", "--api-key", "'abc def'", "set it back to", "'Summer2024!'",
    "eyJabcdefghij.abcdefghij.abcdefghij", "sk-ant-abcdefghijklmnopqrstu", "AKIAABCDEFGHIJKLMNOP",
    "ghp_" + "a" * 36, "xoxb-1234567890-abc", "GB82 WEST 1234 5698 7654 32", "AB 12 34 56 C",
    "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----", "Token", "=", ":",
    "“x y”", "national insurance number", "tax id", "VPN", "locked", "the", "\n", "laptop",
]  # fmt: skip


@given(st.lists(st.sampled_from(_PIECES) | st.text(max_size=12), max_size=14).map(" ".join))
@settings(max_examples=300, deadline=None)
def test_the_quick_checks_before_each_pattern_never_change_what_is_redacted(text):
    """Each pattern is skipped when the text lacks what it needs to match (a digit, a
    keyword): that is for speed only. With every check passing, the result is the same."""
    from agentops import redaction

    gated = redact(text)
    real = redaction._may_match
    redaction._may_match = lambda gate, text: True
    try:
        ungated = redact(text)
    finally:
        redaction._may_match = real
    assert gated == ungated
