"""Our database backend (agentops.postgres): server-side binding, prepared statements, and
``Statements`` (several statements in one round trip, one pipeline)."""

from __future__ import annotations

import tempfile
import uuid

import pytest
from django.db import DataError, connection, connections, transaction
from django.db.backends.postgresql.base import Cursor, ServerBindingCursor
from django.test.utils import CaptureQueriesContext
from psycopg.conninfo import conninfo_to_dict

from agentops.postgres.base import PREPARED_MAX, DatabaseWrapper
from agentops.postgres.statements import Statements
from agentops.settings import _database_from_url


def _prepared(marker: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s::text",
            [f"%{marker}%"],
        )
        return [row[0] for row in cursor.fetchall()]


def _round_trips(action) -> int:
    """How many Sync messages ``action`` sent (one per round trip), from libpq's trace. The
    transaction is begun first (psycopg sends its BEGIN in a round trip of its own)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    pgconn = connection.connection.pgconn
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        try:
            action()
        finally:
            pgconn.untrace()
        trace.seek(0)
        messages = [line.split("\t") for line in trace.read().splitlines()]
    return sum(1 for fields in messages if fields[1:2] == ["F"] and fields[3:4] == ["Sync"])


# --------------------------------------------------------------------------- the engine


@pytest.mark.django_db
def test_the_engine_is_ours_with_server_side_binding_and_a_larger_cache():
    assert isinstance(connections["default"], DatabaseWrapper)
    assert connection.settings_dict["ENGINE"] == "agentops.postgres"
    assert connection.features.uses_server_side_binding
    connection.ensure_connection()
    raw = connection.connection
    # (issubclass: OpenTelemetry's psycopg instrumentation, once on, subclasses the factory)
    assert issubclass(raw.cursor_factory, ServerBindingCursor)
    assert raw.prepare_threshold == 5 and raw.prepared_max == PREPARED_MAX == 500
    with connection.cursor() as cursor:
        # A bound parameter has a type of its own (psycopg sends a small int as int2); a value
        # written into the SQL text by client-side binding would read as an integer literal.
        cursor.execute("SELECT pg_typeof(%s)::text", [1])
        assert cursor.fetchone() == ("smallint",)


@pytest.mark.django_db
def test_a_hot_statement_is_prepared_after_the_threshold():
    marker = f"hot_{uuid.uuid4().hex[:12]}"
    sql = f"SELECT %s::int + 1 AS {marker}"
    with connection.cursor() as cursor:
        for n in range(5):
            cursor.execute(sql, [n])
            assert cursor.fetchone() == (n + 1,)
        assert _prepared(marker) == []  # five runs: still parsed and planned each time
        cursor.execute(sql, [41])
        assert cursor.fetchone() == (42,)
    assert len(_prepared(marker)) == 1  # the sixth was prepared; later ones only execute
    with connection.cursor() as cursor:
        cursor.execute(sql, [1])
    assert len(_prepared(marker)) == 1


# --------------------------------------------------------------------------- Statements


@pytest.mark.django_db
def test_statements_run_in_one_round_trip_and_return_the_last_rows():
    statements = Statements(
        ("SELECT set_config('agentops.probe', %s, true)", ["one"]),
        ("SELECT %s::int * 2", [21]),
        ("SELECT current_setting('agentops.probe'), %s::text", ["last"]),
    )
    with transaction.atomic():
        with CaptureQueriesContext(connection) as queries:
            rows = statements.fetchall()
        assert rows == [("one", "last")]
        assert len(queries) == 1 and queries[0]["sql"].count("; ") == 2
        assert _round_trips(statements.fetchall) == 1
        first, second, _third = statements.execute()
        assert first.fetchone() == ("one",) and second.fetchone() == (42,)
        assert statements.fetchone(1) == (42,)
    seen: list = []
    with connection.execute_wrapper(lambda execute, *args: seen.append(args[0]) or execute(*args)):
        statements.execute()
    assert seen == [statements.sql]  # a wrapper sees one execution per round trip


@pytest.mark.django_db
def test_statements_each_get_prepared_when_hot():
    marker = f"piped_{uuid.uuid4().hex[:12]}"
    statements = Statements(
        (f"SELECT set_config('agentops.{marker}', %s, true)", ["x"]),
        (f"SELECT %s::int AS {marker}", [7]),
    )
    with transaction.atomic():
        for _ in range(6):
            assert statements.fetchall() == [(7,)]
        assert len(_prepared(marker)) == 2


@pytest.mark.django_db
def test_an_error_in_the_middle_is_named_and_atomic_rolls_back():
    statements = Statements(
        ("SELECT set_config('agentops.probe', 'changed', false)", None),
        ("SELECT 1 / %s::int", [0]),
        ("SELECT 'never'", None),
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('agentops.probe', 'before', false)")
    with pytest.raises(DataError, match="division by zero") as raised, transaction.atomic():
        statements.execute()
    assert "In statement 2 of 3 sent together: SELECT 1 / %s::int" in raised.value.__notes__
    # The savepoint was rolled back: the transaction goes on, without the first statement.
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('agentops.probe')")
        assert cursor.fetchone() == ("before",)


@pytest.mark.django_db(transaction=True)
def test_in_autocommit_an_error_undoes_the_statements_before_it():
    """Autocommit: the pipeline's statements share one implicit transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('agentops.probe', 'before', false)")
    with pytest.raises(DataError):
        Statements(
            ("SELECT set_config('agentops.probe', 'changed', false)", None),
            ("SELECT 1 / 0", None),
        ).execute()
    assert connection.get_autocommit()
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('agentops.probe')")
        assert cursor.fetchone() == ("before",)


@pytest.mark.django_db
def test_one_statement_goes_without_a_pipeline():
    statements = Statements(("SELECT %s::text", ["only"]))
    assert _round_trips(statements.fetchall) == 1
    assert statements.fetchone() == ("only",)
    assert Statements().execute() == []


# --------------------------------------------------------------------------- the setting


def test_the_setting_off_binds_client_side(monkeypatch):
    monkeypatch.setenv("DB_SERVER_SIDE_BINDING", "0")
    options = _database_from_url("dbname=x")["OPTIONS"]
    assert "server_side_binding" not in options and "prepare_threshold" not in options
    monkeypatch.setenv("DB_SERVER_SIDE_BINDING", "1")
    options = _database_from_url("dbname=x")["OPTIONS"]
    assert options["server_side_binding"] is True and options["prepare_threshold"] == 5
    monkeypatch.setenv("DB_SERVER_SIDE_BINDING", "sometimes")
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="DB_SERVER_SIDE_BINDING"):
        _database_from_url("dbname=x")


@pytest.mark.django_db
def test_without_server_side_binding_parameters_are_written_into_the_sql():
    options = {
        k: v
        for k, v in connection.settings_dict["OPTIONS"].items()
        if k not in {"server_side_binding", "prepare_threshold"}
    }
    client_side = DatabaseWrapper({**connection.settings_dict, "OPTIONS": options}, "client")
    connections["client"] = client_side  # contrib.postgres looks its connection up by alias
    try:
        client_side.ensure_connection()
        assert issubclass(client_side.connection.cursor_factory, Cursor)  # (see above)
        assert client_side.connection.prepare_threshold is None
        with client_side.cursor() as cursor:
            cursor.execute("SELECT pg_typeof(%s)::text", [1])
            assert cursor.fetchone() == ("integer",)
        # Statements work there too (still one pipeline).
        rows = Statements(("SELECT 1", None), ("SELECT %s::text", ["b"])).fetchall(using="client")
        assert rows == [("b",)]
    finally:
        client_side.close()
        if hasattr(connections._connections, "client"):
            del connections["client"]


def test_worker_database_url_keeps_only_libpq_options(settings):
    """The URL a test's real worker gets must be one libpq accepts."""
    from tests.celery_worker import worker_database_url

    assert settings.DATABASES["default"]["OPTIONS"].get("server_side_binding") is True
    url = worker_database_url()
    params = conninfo_to_dict(url)  # libpq refuses an option it does not know
    assert "server_side_binding" not in params and "prepare_threshold" not in params
    assert params["dbname"] == connection.settings_dict["NAME"]


# --- before_commit: the last work inside a transaction -----------------------------------


@pytest.mark.django_db(transaction=True)
def test_before_commit_runs_once_per_func_with_its_items_inside_the_transaction():
    seen = []

    def hook(items):
        with connection.cursor() as cursor:  # still inside the transaction
            cursor.execute("SELECT txid_current_if_assigned() IS NOT NULL")
            seen.append((list(items), connection.in_atomic_block, cursor.fetchone()[0]))

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT txid_current()")  # the transaction has an id
        connection.before_commit(hook, "a")
        with transaction.atomic():  # a savepoint that commits keeps its items
            connection.before_commit(hook, "b")
        assert seen == []  # not before the commit
    assert seen == [(["a", "b"], False, True)]
    assert connection.run_before_commit == []


@pytest.mark.django_db(transaction=True)
def test_before_commit_items_go_with_a_rolled_back_savepoint_or_transaction():
    seen = []
    with transaction.atomic():
        connection.before_commit(seen.extend, "kept")
        with pytest.raises(ZeroDivisionError), transaction.atomic():
            connection.before_commit(seen.extend, "dropped with its savepoint")
            raise ZeroDivisionError
        connection.before_commit(seen.extend, "kept too")
    assert seen == ["kept", "kept too"]
    seen.clear()
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        connection.before_commit(seen.extend, "dropped with the transaction")
        raise ZeroDivisionError
    with transaction.atomic():
        pass
    assert seen == []


@pytest.mark.django_db(transaction=True)
def test_an_error_before_commit_rolls_the_transaction_back(personas):
    from agentops.models import Tenant

    def failing(_items):
        raise DataError("the hook failed")

    name = personas.tenant.name
    with pytest.raises(DataError, match="the hook failed"), transaction.atomic():
        Tenant.objects.filter(pk=personas.tenant.pk).update(name="changed")
        connection.before_commit(failing, None)
    assert Tenant.objects.get(pk=personas.tenant.pk).name == name  # rolled back
    assert connection.run_before_commit == [] and not connection.in_atomic_block
    with transaction.atomic():  # the connection is usable
        Tenant.objects.filter(pk=personas.tenant.pk).update(name="renamed")
    assert Tenant.objects.get(pk=personas.tenant.pk).name == "renamed"


def test_before_commit_needs_a_transaction():
    from django.db.transaction import TransactionManagementError

    with pytest.raises(TransactionManagementError):
        connection.before_commit(print, None)
