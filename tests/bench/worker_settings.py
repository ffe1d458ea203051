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
# Circuit breakers and rate limits live in Redis under this prefix: a test run beside the
# bench that opens a breaker must not make the bench's runs fail over, nor the other way.
CACHES["default"]["KEY_PREFIX"] = "agentops-bench"  # noqa: F405
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("AGENTOPS_BENCH_QUEUE", "celery")
# Its knowledge work (learning from resolved tickets) on a bench queue too, consumed by the
# same worker: the bench counts that work's CPU, as before the knowledge queue existed.
CELERY_KNOWLEDGE_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}-knowledge"
CELERY_TASK_QUEUES, CELERY_TASK_ROUTES = celery_queues(  # noqa: F405
    CELERY_TASK_DEFAULT_QUEUE, CELERY_KNOWLEDGE_QUEUE
)
if os.environ.get("AGENTOPS_BENCH_QUERY_LOG"):
    CELERY_IMPORTS = ["tests.bench.querylog"]
# For comparison with how workers ran before CELERY_DB_REUSE_MAX: a new connection per task.
if os.environ.get("AGENTOPS_BENCH_CLOSE_DB_PER_TASK"):
    CELERY_DB_REUSE_MAX = None
# Measured as production runs: the worker loads its model when it starts.
WORKER_WARM_UP = True
