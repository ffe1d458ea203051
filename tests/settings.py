"""Test settings: the real database and broker, fast hashing, a Redis db of their own."""

import os

os.environ.setdefault("AGENTOPS_ENV", "test")
# `pytest -n N` (pytest-xdist): each worker process ("gw0", "gw1", …) inherited the
# controller's environment, and with it the controller's broker queue, Redis db, metrics
# directory and witness file below. A worker takes its own, once; the Celery workers and web
# processes it starts inherit them (and the marker) from it. Its test database is its own
# already (pytest-django names it per worker).
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _XDIST_WORKER and os.environ.get("AGENTOPS_TEST_XDIST") != _XDIST_WORKER:
    os.environ["AGENTOPS_TEST_XDIST"] = _XDIST_WORKER
    for _inherited in ("AGENTOPS_TEST_QUEUE", "AGENTOPS_TEST_WITNESS", "PROMETHEUS_MULTIPROC_DIR"):
        os.environ.pop(_inherited, None)
    # Redis keys hold tenant ids, which every worker's database numbers from 1 alike: a db
    # each (the suite uses db 1 alone; Redis has 16).
    os.environ["REDIS_DB"] = str(2 + int(_XDIST_WORKER.removeprefix("gw")))
os.environ.setdefault("REDIS_DB", "1")
# Metrics of this test process (and the worker it starts) only; the launcher wipes stale ones.
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", f"/tmp/agentops-prometheus-{os.getpid()}"
)  # never share the broker queue with a running `make run`

from agentops.settings import *  # noqa: E402, F403
from agentops.settings import _database_from_url  # noqa: E402

# One test database per test process, so parallel runs (two terminals, CI beside `make run`)
# never drop each other's database.
# The suite logs in as the owner, so pytest-django can create, migrate, flush and drop its
# database; the tests themselves run as the application's role (tests/conftest.py starts every
# connection with ``-c role=agentops_app``), and the audit tests take the owner's rights only
# where they tamper the way an attacker with them would (tests.conftest.owner_rights).
DATABASES["default"] = _database_from_url(DATABASE_MIGRATION_URL)  # noqa: F405
DATABASES["default"]["TEST"] = {"NAME": f"test_agentops_{os.getpid()}"}  # noqa: F405

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tasks run inline unless a test is about delivery (tests/test_worker.py starts a real worker).
# A real worker process started by the delivery tests sets AGENTOPS_TEST_EAGER=0, so the
# follow-up tasks it enqueues really go through the broker instead of running inline.
CELERY_TASK_ALWAYS_EAGER = os.environ.get("AGENTOPS_TEST_EAGER", "1") == "1"
CELERY_TASK_EAGER_PROPAGATES = True
# A broker queue of this test session's own (inherited by the workers it starts), so two test
# sessions at once (a developer and CI, or parallel helpers) never run each other's tasks.
CELERY_TASK_DEFAULT_QUEUE = os.environ.setdefault("AGENTOPS_TEST_QUEUE", f"test-{os.getpid()}")
CELERY_KNOWLEDGE_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}-knowledge"
CELERY_TASK_QUEUES, CELERY_TASK_ROUTES = celery_queues(  # noqa: F405
    CELERY_TASK_DEFAULT_QUEUE, CELERY_KNOWLEDGE_QUEUE
)
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# A real worker (another process) cannot fill this process's locmem outbox: delivery tests give
# it a directory of its own (Django's file backend) and read the messages back.
if os.environ.get("AGENTOPS_TEST_EMAIL_DIR"):
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = os.environ["AGENTOPS_TEST_EMAIL_DIR"]
CACHES["default"]["KEY_PREFIX"] = "agentops-test"  # noqa: F405
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
# The health tests start and stop workers between checks: no cached worker ping unless a test
# is about the cache (tests/agentops/test_observability_endpoints.py).
HEALTH_WORKER_CACHE_SECONDS = 0
# Tests that are not about agents should not start one on every ticket they open.
AGENT_AUTOSTART_DEFAULT = False
# Tests that are not about meaning embed with the deterministic hashing backend; the tests that
# are (tests/knowledge/test_semantic*.py) override this to "minilm".
KNOWLEDGE_EMBEDDING_BACKEND = "hashing"
# The framework's contract test blueprint (tests/agents/probe_blueprint.py), registered in every
# process of the test session, real workers included.
AGENT_BLUEPRINT_MODULES = ["tests.agents.probe_blueprint"]
# Audit checkpoints of this test session's own database go to a witness file of its own
# (inherited by the workers it starts); removed at the end (tests/conftest.py).
AUDIT_WITNESS_FILE = os.environ.setdefault(
    "AGENTOPS_TEST_WITNESS", f"/tmp/agentops-witness-{os.getpid()}.jsonl"
)

# The suite starts some forty short-lived workers, most of which never triage: no warm-up
# (1.3 s each). tests/test_worker_warm_up.py covers it; the bench's workers keep it.
WORKER_WARM_UP = False
