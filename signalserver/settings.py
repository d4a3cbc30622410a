"""Settings for signalserver.

This is the only module that reads the environment. Every value is read through one of the
small helpers below, which reject malformed values with a message naming the variable.
"""

from __future__ import annotations

import os
import shlex
import socket
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use true or false")


def env_int(name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={value} is above the maximum of {maximum}")
    return value


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_secret(*names: str) -> str:
    """The first of `names` that is set, directly or as a file path in `<NAME>_FILE`."""
    for name in names:
        value = env_str(name)
        if value:
            return value
        path = env_str(f"{name}_FILE")
        if path:
            try:
                return Path(path).read_text().strip()
            except OSError as e:
                raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {e}") from None
    return ""


# Mode
DEBUG = env_bool("DEBUG", False)
TESTING = False  # set by tests/settings.py

# Secrets and hosts: required in production, all missing ones named at once
SECRET_KEY = env_secret("SECRET_KEY", "FLASK_SECRET_KEY")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
RENDER_EXTERNAL_HOSTNAME = env_str("RENDER_EXTERNAL_HOSTNAME")
if RENDER_EXTERNAL_HOSTNAME:
    ALLOWED_HOSTS.append(RENDER_EXTERNAL_HOSTNAME)

MISSING_REQUIRED_ENV = [
    name for name, present in (("SECRET_KEY", bool(SECRET_KEY)), ("ALLOWED_HOSTS", bool(ALLOWED_HOSTS))) if not present
]
if MISSING_REQUIRED_ENV and not DEBUG:
    raise ImproperlyConfigured(
        "Missing required environment variable(s): "
        + ", ".join(MISSING_REQUIRED_ENV)
        + " (SECRET_KEY may also be given as FLASK_SECRET_KEY or SECRET_KEY_FILE;"
        " set DEBUG=true for local development)"
    )
if not SECRET_KEY:
    SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"  # noqa: S105  # nosec B105
# Local probes (container healthcheck, the dashboard on the host itself) always work.
ALLOWED_HOSTS += ["localhost", "127.0.0.1", "[::1]"]
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL").rstrip("/")
if PUBLIC_BASE_URL:
    CSRF_TRUSTED_ORIGINS.append(PUBLIC_BASE_URL)

# Processes
SIGNALSERVER_ROLE = env_str("SIGNALSERVER_ROLE", "all")
if SIGNALSERVER_ROLE not in ("web", "worker", "all"):
    raise ImproperlyConfigured(f"SIGNALSERVER_ROLE={SIGNALSERVER_ROLE!r} must be web, worker or all")
ENABLE_BACKGROUND_TASKS = env_bool("ENABLE_BACKGROUND_TASKS", True) and not env_bool("DISABLE_BACKGROUND_TASKS", False)
PORT = env_int("PORT", 8000, 1, 65535)
HOSTNAME = socket.gethostname()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "signalserver",
    "mail",
    "delivery",
    "deploys",
    "scenarios",
]

MIDDLEWARE = [
    "signalserver.middleware.RequestIdMiddleware",
    "deploys.middleware.release_header",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "signalserver.urls"
WSGI_APPLICATION = "signalserver.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: embedded SQLite by default, PostgreSQL with DATABASE_URL
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var")))
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    try:
        DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
    except ValueError as e:
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {e}") from None
else:
    SQLITE_PATH = Path(env_str("SQLITE_PATH", str(DATA_DIR / "db.sqlite3")))
    SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(SQLITE_PATH),
            "OPTIONS": {
                # Web, worker and poller processes share the file: WAL lets readers run
                # beside the writer, IMMEDIATE takes the write lock up front so two
                # writers queue instead of failing on a lock upgrade.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
            # Kept open between requests, as PostgreSQL's are: the dashboard keeps what it drew
            # per connection while the file shows the same rows (signalserver/snapshot.py).
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: cache, django-q2 broker and poller lease when REDIS_URL is set
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES: dict[str, Any] = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Jobs (django-q2). A job's timeout must stay below `retry`, or a slow job runs twice.
Q_WORKERS = env_int("Q_WORKERS", 3, 1, 64)
Q_TIMEOUT_SECONDS = env_int("Q_TIMEOUT_SECONDS", 600, 30)
Q_CLUSTER: dict[str, Any] = {
    "name": "signalserver",
    "workers": Q_WORKERS,
    "timeout": Q_TIMEOUT_SECONDS,
    "retry": Q_TIMEOUT_SECONDS + 60,
    "max_attempts": 1,
    "catch_up": False,
    "save_limit": 1000,
    "label": "Jobs",
    "poll": 0.1,
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
QCLUSTER_HEARTBEAT_MAX_AGE_SECONDS = env_int("QCLUSTER_HEARTBEAT_MAX_AGE_SECONDS", 180, 60)

# Observability: /health fails for an enabled mailbox inside its active hours with no good
# poll cycle for this long; /metrics asks for `Authorization: Bearer <METRICS_TOKEN>` when set
# (an API token of scope metrics works too).
HEALTH_MAILBOX_MAX_AGE_SECONDS = env_int("HEALTH_MAILBOX_MAX_AGE_SECONDS", 300, 10)
METRICS_TOKEN = env_secret("METRICS_TOKEN")
# The dashboard's 24-hour charts are computed at most this often (0: on every view).
DASHBOARD_CHARTS_CACHE_SECONDS = env_int("DASHBOARD_CHARTS_CACHE_SECONDS", 60, 0, 3600)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Time: stored in UTC, shown in Europe/Paris unless TIME_ZONE says otherwise
USE_TZ = True
TIME_ZONE = env_str("TIME_ZONE", "Europe/Paris")
LANGUAGE_CODE = "en-us"
USE_I18N = True

# Static files, served by whitenoise
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# HTTP security: Django's middleware settings, strict unless DEBUG
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^health(/live)?$", r"^api/ping$", r"^metrics$"]
if env_bool("TRUST_X_FORWARDED_PROTO", True):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, 300)
CSRF_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_HTTPONLY = True
# Messages stay on the server: some carry a secret that is shown once.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# Accounts: operators are Django users; they sign in by password or magic link
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
MAGIC_LINK_TTL_SECONDS = env_int("MAGIC_LINK_TTL_SECONDS", 900, 60)
# Failed password logins: after LOGIN_FAILURE_LIMIT within the window, from one address or
# for one username, logins wait until the oldest failure leaves the window.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, 1)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 300, 10)
# Behind a proxy (Render, nginx) the client address is the last one it adds to X-Forwarded-For.
TRUST_X_FORWARDED_FOR = env_bool("TRUST_X_FORWARDED_FOR", True)

# Logging: JSON lines in production, readable text in development
LOG_LEVEL = env_str("LOG_LEVEL", env_str("FLASK_LOG_LEVEL", "INFO")).upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r} is not a log level")
LOG_FORMAT = env_str("LOG_FORMAT", "text" if DEBUG else "json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} must be json or text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "signalserver.logs.ContextFilter"}},
    "formatters": {
        "json": {"()": "signalserver.logs.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "django-q": {"level": LOG_LEVEL},
    },
}

# Mail: IMAP poller
# Socket timeout; IDLE is also ended and re-issued this often, which proves the connection
# alive (and stays far below the servers' 29-minute IDLE limit).
IMAP_TIMEOUT_SECONDS = env_int("IMAP_TIMEOUT_SECONDS", 30, 1, 600)
IMAP_CA_FILE = env_str("IMAP_CA_FILE")
POLLER_LEASE_SECONDS = env_int("POLLER_LEASE_SECONDS", 60, 3, 3600)
# A scheduled poller job serves this long, then hands over to its successor.
POLLER_SESSION_SECONDS = env_int("POLLER_SESSION_SECONDS", 55, 5, Q_TIMEOUT_SECONDS - 30)
POLLER_LOCK_KEY = env_str("POLLER_LOCK_KEY", "render_signal:poller_lock")
MAIL_MAX_HTML_BYTES = env_int("MAIL_MAX_HTML_BYTES", 1024 * 1024, 1024)
RAW_MESSAGE_RETENTION_DAYS = env_int("RAW_MESSAGE_RETENTION_DAYS", 30, 0)
# Keys for secrets stored in the database (mailbox passwords): the first encrypts, all
# decrypt, so a key can be rotated. Defaults to one derived from SECRET_KEY.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS") or [SECRET_KEY]
# The original app's variables create the first mailbox when none exists.
LEGACY_MAILBOX = {
    "username": env_str("EMAIL_ADDRESS"),
    "password": env_secret("EMAIL_PASSWORD"),
    "host": env_str("IMAP_SERVER"),
    "port": env_int("IMAP_PORT", 993, 1, 65535),
    "use_ssl": env_bool("IMAP_USE_SSL", True),
    "allowed_senders": env_str("SENDER_OF_INTEREST_FOR_POLLING"),
    "timezone": env_str("POLLING_TIMEZONE", "Europe/Paris"),
    "active_days": env_str("POLLING_ACTIVE_DAYS", "0,1,2,3,4"),
    "active_start_hour": env_int("POLLING_ACTIVE_START_HOUR", 9, 0, 23),
    "active_end_hour": env_int("POLLING_ACTIVE_END_HOUR", 23, 0, 24),
    "poll_interval_seconds": env_int("EMAIL_POLLING_INTERVAL_SECONDS", 30, 1),
    "inactive_interval_seconds": env_int("POLLING_INACTIVE_CHECK_INTERVAL_SECONDS", 600, 1),
}

# Mail: Gmail push ingress (the original's Apps Script posts each labelled message to
# /api/ingress/gmail). PROCESS_API_TOKEN is its Bearer token; API tokens of scope ingress work too.
PROCESS_API_TOKEN = env_secret("PROCESS_API_TOKEN")
# Accept pushes only from addresses whose reverse DNS is Google's (confirmed by a forward lookup).
GMAIL_INGRESS_IP_CHECK_ENABLED = env_bool("GMAIL_INGRESS_IP_CHECK_ENABLED", False)
# Larger request bodies are refused with 413 before they are read.
GMAIL_INGRESS_MAX_BYTES = env_int("GMAIL_INGRESS_MAX_BYTES", 5 * 1024 * 1024, 1024)
# The original's variables seed the ingress settings when they are first created.
LEGACY_GMAIL_INGRESS = {
    "allowed_senders": env_str("GMAIL_SENDER_ALLOWLIST"),
    "timezone": env_str("POLLING_TIMEZONE", "Europe/Paris"),
}

# Delivery: webhooks
# Loopback/private targets and plain http (local development and tests only).
WEBHOOK_ALLOW_PRIVATE_TARGETS = env_bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", False)
ALLOW_CUSTOM_WEBHOOK_WITHOUT_LINKS = env_bool("ALLOW_CUSTOM_WEBHOOK_WITHOUT_LINKS", False)
# Seconds between attempts (about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h), each with ±10 % jitter.
DELIVERY_RETRY_DELAYS = [int(s) for s in env_list("DELIVERY_RETRY_DELAYS", "5,300,1800,7200,18000,36000")]
if any(d < 0 for d in DELIVERY_RETRY_DELAYS):
    raise ImproperlyConfigured("DELIVERY_RETRY_DELAYS must be non-negative seconds")
# A claimed delivery is taken back this long after its endpoint's timeout (a killed worker).
DELIVERY_CLAIM_MARGIN_SECONDS = env_int("DELIVERY_CLAIM_MARGIN_SECONDS", 30, 1)
# Throughput: deliveries a sender job claims at once, and requests it keeps in flight.
DELIVERY_BATCH_SIZE = env_int("DELIVERY_BATCH_SIZE", 50, 1, 1000)
DELIVERY_CONCURRENCY = env_int("DELIVERY_CONCURRENCY", 8, 1, 64)
# The original app's variables create the first endpoint and the sending schedule.
LEGACY_ENDPOINT_URL = env_str("WEBHOOK_URL")
LEGACY_ENDPOINT_SECRET = env_secret("WEBHOOK_SIGNING_SECRET")
LEGACY_SENDING_SCHEDULE = {
    "sending_enabled": env_bool("WEBHOOK_SENDING_ENABLED", True),
    "window_start": env_str("WEBHOOKS_TIME_START", env_str("WEBHOOK_TIME_START")),
    "window_end": env_str("WEBHOOKS_TIME_END", env_str("WEBHOOK_TIME_END")),
    "timezone": env_str("POLLING_TIMEZONE", "Europe/Paris"),
}
# R2 offload through the Cloudflare Worker (all three needed to enable it).
R2_FETCH_ENDPOINT = env_str("R2_FETCH_ENDPOINT")
R2_FETCH_TOKEN = env_secret("R2_FETCH_TOKEN")
R2_BUCKET_NAME = env_str("R2_BUCKET_NAME")
R2_FETCH_ENABLED = env_bool("R2_FETCH_ENABLED", False) and bool(R2_FETCH_ENDPOINT and R2_FETCH_TOKEN)
R2_ALLOWED_DOMAINS = env_list("R2_ALLOWED_DOMAINS", "dropbox.com,fromsmash.com,swisstransfer.com,wetransfer.com")
# A link copied within this many hours is reused (the Worker's bucket keeps objects 24 h).
R2_REUSE_HOURS = env_int("R2_REUSE_HOURS", 20, 0)
STORED_LINK_RETENTION_DAYS = env_int("STORED_LINK_RETENTION_DAYS", 90, 0)

# Moving over from the original: where its Redis config store kept its documents
# (`import_legacy_config --from-redis`).
LEGACY_CONFIG_REDIS_PREFIX = env_str("CONFIG_STORE_REDIS_PREFIX", "r:ss:config:")

# Make.com scenarios: started and stopped with the mailboxes' switch and vacation, as the
# original did. The Make API with MAKECOM_API_KEY, or the control webhook when both
# MAKE_WEBHOOK_CONTROL_URL and MAKE_WEBHOOK_API_KEY are set.
MAKECOM_API_KEY = env_secret("MAKECOM_API_KEY")
MAKE_API_HOST = env_str("MAKE_API_HOST", "eu1.make.com")
MAKE_API_BASE_URL = env_str("MAKE_API_BASE_URL", f"https://{MAKE_API_HOST}/api/v2").rstrip("/")
MAKE_API_AUTH_TYPE = env_str("MAKE_API_AUTH_TYPE", "Token").capitalize()
if MAKE_API_AUTH_TYPE not in ("Token", "Bearer"):
    raise ImproperlyConfigured(f"MAKE_API_AUTH_TYPE={MAKE_API_AUTH_TYPE!r} must be Token or Bearer")
MAKE_API_ORG_ID = env_str("MAKE_API_ORG_ID")
MAKE_WEBHOOK_CONTROL_URL = env_str("MAKE_WEBHOOK_CONTROL_URL")
MAKE_WEBHOOK_API_KEY = env_secret("MAKE_WEBHOOK_API_KEY")
MAKE_SCENARIOS = {
    "autorepondeur": env_int("MAKE_SCENARIO_ID_AUTOREPONDEUR", 7448207, 1),
    "recadrage": env_int("MAKE_SCENARIO_ID_RECADRAGE", 6649843, 1),
}
# Deploys: the Render deploy hook, else the Render API, else a local command; a job does the work.
RENDER_API_BASE_URL = env_str("RENDER_API_BASE_URL", "https://api.render.com").rstrip("/")
# Its `key` query parameter is a secret: it is masked (?key=***) wherever the URL is shown.
RENDER_DEPLOY_HOOK_URL = env_secret("RENDER_DEPLOY_HOOK_URL")
RENDER_API_KEY = env_secret("RENDER_API_KEY")
RENDER_SERVICE_ID = env_str("RENDER_SERVICE_ID")
RENDER_DEPLOY_CLEAR_CACHE = env_str("RENDER_DEPLOY_CLEAR_CACHE", "do_not_clear")
if RENDER_DEPLOY_CLEAR_CACHE not in ("clear", "do_not_clear"):
    raise ImproperlyConfigured(f"RENDER_DEPLOY_CLEAR_CACHE={RENDER_DEPLOY_CLEAR_CACHE!r} must be clear or do_not_clear")
RENDER_IMAGE_URL = env_str("RENDER_IMAGE_URL")
# A Render deploy is followed until live or failed, for at most this long.
RENDER_DEPLOY_WAIT_SECONDS = env_int("RENDER_DEPLOY_WAIT_SECONDS", 1800, 0)
RENDER_DEPLOY_POLL_SECONDS = env_int("RENDER_DEPLOY_POLL_SECONDS", 10, 1, 300)
# Run as an argument list, never through a shell: put compound commands in a script.
DEPLOY_CMD = shlex.split(env_str("DEPLOY_CMD"))
if set(DEPLOY_CMD) & {";", "&&", "||", "|", ">", ">>", "<", "&"}:
    raise ImproperlyConfigured("DEPLOY_CMD is run without a shell: put a compound command in a script and name it")
DEPLOY_CMD_TIMEOUT_SECONDS = env_int("DEPLOY_CMD_TIMEOUT_SECONDS", 300, 1, Q_TIMEOUT_SECONDS - 30)
# GitHub webhook: pushes to DEPLOY_BRANCH start a deployment.
GITHUB_WEBHOOK_SECRET = env_secret("GITHUB_WEBHOOK_SECRET")
DEPLOY_BRANCH = env_str("DEPLOY_BRANCH", "main")
GITHUB_WEBHOOK_MAX_BYTES = env_int("GITHUB_WEBHOOK_MAX_BYTES", 5 * 1024 * 1024, 1024)
# Self-hosted releases: RELEASES_DIR/releases/<N>/ and the RELEASES_DIR/current symlink.
RELEASES_DIR = env_str("RELEASES_DIR")
RELEASE_REPOSITORY = env_str("RELEASE_REPOSITORY") or (str(Path(RELEASES_DIR) / "repo") if RELEASES_DIR else "")
RELEASES_KEPT = env_int("RELEASES_KEPT", 4, 2)
RELEASE_HEALTH_URL = env_str("RELEASE_HEALTH_URL", f"http://127.0.0.1:{PORT}/health")
RELEASE_HEALTH_TIMEOUT_SECONDS = env_int("RELEASE_HEALTH_TIMEOUT_SECONDS", 60, 5)
RELEASE_RESTART_WORKER_CMD = shlex.split(env_str("RELEASE_RESTART_WORKER_CMD"))
# Gunicorn's master writes its pid here (gunicorn.conf.py reads the same variables).
GUNICORN_PIDFILE = env_str("GUNICORN_PIDFILE") or (str(Path(RELEASES_DIR) / "gunicorn.pid") if RELEASES_DIR else "")
