"""A page made of many reads shows one moment: a read-only REPEATABLE READ transaction.

Under autocommit every SELECT sees the database as of its own start. A page that reads the
ticket and then, a few milliseconds later, its agent run can show a run that already finished
beside a ticket from before the run resolved it, and a finished run's page stops polling, so
the person is left looking at that mix. Inside one snapshot the page shows either the state
before the worker's commits or the state after them, never half of each.

READ ONLY as well: a GET renders; a write from one is a defect, and PostgreSQL says so.
"""

from __future__ import annotations

from functools import wraps

from django.db import DEFAULT_DB_ALIAS, transaction


def snapshot_view(view):
    """Run the view, rendering included, in one read-only REPEATABLE READ transaction.

    The view must return a rendered response (``render``, not a lazy TemplateResponse), so
    its templates' reads happen inside the snapshot too. Inside an outer transaction (a test's,
    or a caller's) the outer one stands: its isolation is fixed at its first statement.
    """

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        connection = transaction.get_connection(DEFAULT_DB_ALIAS)
        if connection.in_atomic_block:
            return view(request, *args, **kwargs)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            return view(request, *args, **kwargs)

    return wrapper
