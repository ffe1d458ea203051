"""Settings of the pipeline bench's Celery worker: the test settings, with production delivery.

``tests.settings`` makes tasks eager (tests run them inline). A worker on those settings
would run the engine's follow-up tasks inline too, inside the task that enqueued them,
instead of sending them through the broker. Here every task goes through Redis, as in
production, on a queue of the bench's own (``AGENTOPS_BENCH_QUEUE``) so a test run beside it
never takes its tasks. ``AGENTOPS_BENCH_QUERY_LOG`` turns on the per-task SQL counter
(``tests.bench.querylog``).
"""

import os

from tests.settings import *  # noqa: F403

CELERY_TASK_ALWAYS_EAGER = False
DEBUG = False  # as in production: no debug cursor recording every query
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("AGENTOPS_BENCH_QUEUE", "celery")
if os.environ.get("AGENTOPS_BENCH_QUERY_LOG"):
    CELERY_IMPORTS = ["tests.bench.querylog"]
# EXPERIMENT (temporary)
if os.environ.get("BENCH_EXP_REUSE_OFF"):
    CELERY_DB_REUSE_MAX = None
if os.environ.get("BENCH_EXP_IGNORE_RESULT"):
    CELERY_TASK_IGNORE_RESULT = True
