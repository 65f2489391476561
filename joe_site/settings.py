"""joe's settings: one file, every knob read from the environment with a safe default.

The README's configuration table lists every variable read here.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import unquote, urlparse

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


class EnvironmentSettingError(ImproperlyConfigured):
    """A variable the environment left out or got wrong; the sentence says which and what to do.
    manage.py prints it alone, without a traceback, and exits with status 78 (EX_CONFIG), on
    which docker/worker stops rather than wait for it to mend."""


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise EnvironmentSettingError(f"{name} must be a whole number, not {value!r}.") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def database_from_url(url: str) -> dict:
    """postgres://user:pass@host:port/name or sqlite:///absolute/path (tiny on purpose)."""
    parsed = urlparse(url)
    if parsed.scheme in {"postgres", "postgresql", "pgsql"}:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 60),
            "CONN_HEALTH_CHECKS": True,
            # The JIT's compile time dwarfs the gallery's millisecond queries.
            "OPTIONS": {"options": "-c jit=off"},
        }
    if parsed.scheme == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": unquote(parsed.path) or str(DATA_DIR / "joe.sqlite3"),
            # WAL lets the web process read while the worker writes progress.
            "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;", "timeout": 20},
        }
    raise EnvironmentSettingError(
        f"DATABASE_URL scheme {parsed.scheme!r} is not supported (postgres or sqlite)."
    )


DEBUG = env_bool("DEBUG", False)

# Private data lives here: uploads, checkpoints, the local secret key, the embedded broker.
# Nothing under it is ever served by the web server.
DATA_DIR = Path(env_str("JOE_DATA_DIR", str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)  # new: for this user only
UPLOAD_DIR = DATA_DIR / "uploads"
MODELS_DIR = DATA_DIR / "models"


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key and not DEBUG and key.startswith("change-me"):  # (a short key: check --deploy says)
        raise EnvironmentSettingError(
            "SECRET_KEY is the example's placeholder: set a long "
            'random one (python3 -c "import secrets; print(secrets.token_urlsafe(50))").'
        )
    if key:
        return key
    if not DEBUG:
        raise EnvironmentSettingError(
            "SECRET_KEY must be set in the environment when DEBUG is off: a long random one "
            '(python3 -c "import secrets; print(secrets.token_urlsafe(50))"), in .env with '
            "docker-compose (see the README: Production with docker-compose)."
        )
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "joe_site",
    "accounts",
    "ingest",
    "trainer",
    "generations",
]

MIDDLEWARE = [
    # The container's health check, from 127.0.0.1 over HTTP: before the host check and redirect.
    "joe_site.middleware.LocalHealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Whatever read the session is private (not kept by proxies), and unstored unless it says.
    "joe_site.middleware.PrivateCacheMiddleware",
    # Members only: every view needs a login unless it is marked @login_not_required.
    "joe_site.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "joe_site.urls"
WSGI_APPLICATION = "joe_site.wsgi.application"

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

DATABASES = {
    "default": database_from_url(env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'joe.sqlite3'}"))
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("JOE_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        # No base_url: uploaded exports and checkpoints have no URL at all.
        "OPTIONS": {"location": str(UPLOAD_DIR), "base_url": None},
    },
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG and env_bool("JOE_MANIFEST_STATIC", True)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# Uploads: streamed to temporary files on disk under the data dir, never held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_TEMP_DIR = str(DATA_DIR / "tmp")
# Private messages: uploaded files and their folders are for the user running joe only.
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)
JOE_MAX_UPLOAD_BYTES = env_int("JOE_MAX_UPLOAD_BYTES", 4 * 1024**3)
# A big Slack import on PostgreSQL is parsed by this many worker processes ("auto": one per core
# but one, at most 4; 0: none), when its day files hold at least this many bytes uncompressed.
JOE_INGEST_WORKERS = env_str("JOE_INGEST_WORKERS", "auto")
JOE_INGEST_PARALLEL_MIN_BYTES = env_int("JOE_INGEST_PARALLEL_MIN_BYTES", 16 * 1024**2)
# Days the file of a failed or cancelled import is kept for a retry ("keep the file" aside).
JOE_FAILED_UPLOAD_DAYS = env_int("JOE_FAILED_UPLOAD_DAYS", 7)

# Redis when configured; otherwise a file-based broker and cache that need no server.
REDIS_URL = env_str("REDIS_URL")
BROKER_DIR = DATA_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    from joe_site.cache import redis_cache

    CACHES = {"default": redis_cache(REDIS_URL)}  # Redis down: a miss, not a 500
else:
    CELERY_BROKER_URL = "filesystem://localhost//"  # a host named: kombu warns without one
    for sub in ("in", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "in"),
        "data_folder_out": str(BROKER_DIR / "in"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
        }
    }

# Security. Production (DEBUG off) is HTTPS-only unless JOE_HTTPS=0 says a proxy does not exist.
_https = env_bool("JOE_HTTPS", not DEBUG)
SESSION_COOKIE_SECURE = _https
CSRF_COOKIE_SECURE = _https
SECURE_SSL_REDIRECT = _https and env_bool("JOE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("JOE_HSTS_SECONDS", 31536000 if _https else 0)
# Every subdomain for a year is a promise about sites joe does not know of: joe on an apex domain
# (ourgang.net) would make browsers refuse its other, plain-HTTP hosts. Opt in, as for preload.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("JOE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("JOE_HSTS_PRELOAD", False)
# Behind a TLS proxy on this machine: trust its X-Forwarded-Proto, and take a client's address
# from the last X-Forwarded-For entry (the one the proxy added) for the login throttle.
JOE_BEHIND_PROXY = env_bool("JOE_BEHIND_PROXY", False)
if JOE_BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REFERRER_POLICY = "same-origin"
# Scripts only from our own files: no inline script or on* handler runs, so text that slipped
# through escaping (model output is private chat, replayed) could not act. Inline style
# attributes stay allowed (progress bars, speaker colours; htmx adds its indicator style).
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# HSTS for subdomains (W005) and preload (W021) are promises for a whole domain: a self-hoster opts
# in explicitly (above).
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]

# joe's own knobs
JOE_SESSION_GAP_MINUTES = env_int("JOE_SESSION_GAP_MINUTES", 30)
JOE_LEAK_THRESHOLD = env_int("JOE_LEAK_THRESHOLD", 8)
JOE_CURATE_BEFORE_PUBLISH = env_bool("JOE_CURATE_BEFORE_PUBLISH", False)
JOE_LIVE_RATE_LIMIT = env_int("JOE_LIVE_RATE_LIMIT", 20)  # live generations per member per hour
JOE_INVITE_DAYS = env_int("JOE_INVITE_DAYS", 7)
# Failed logins (site and admin): a username is locked for one address after this many in a row,
# and an address for all usernames after 4 times as many, for JOE_LOGIN_LOCK_MINUTES.
JOE_LOGIN_FAILURES = env_int("JOE_LOGIN_FAILURES", 5)
JOE_LOGIN_LOCK_MINUTES = env_int("JOE_LOGIN_LOCK_MINUTES", 15)
# A link to set a new password (made by staff, or emailed) works this many days, once.
JOE_PASSWORD_RESET_DAYS = env_int("JOE_PASSWORD_RESET_DAYS", 3)
PASSWORD_RESET_TIMEOUT = JOE_PASSWORD_RESET_DAYS * 86400
JOE_DEFAULT_BASE_MODEL = env_str("JOE_DEFAULT_BASE_MODEL", "smollm2-135m")

# Email: only for "Forgot your password?" links and the links that confirm a member's address.
# Off unless EMAIL_HOST or EMAIL_BACKEND is set; without it, that page says to ask staff for a
# reset link, and no address can be confirmed.
JOE_EMAIL_ENABLED = bool(env_str("EMAIL_HOST") or env_str("EMAIL_BACKEND"))
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)  # port 465; otherwise STARTTLS on 587
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", not EMAIL_USE_SSL)
EMAIL_PORT = env_int("EMAIL_PORT", 465 if EMAIL_USE_SSL else 587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_TIMEOUT = 30
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "joe@localhost")

# Celery: state lives in database rows, so there is no result backend.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    # The quality report is CPU work that may take a minute: keep it off the GPU queue, where it
    # would hold up the next batch (first match wins).
    "generations.report.*": {"queue": "default"},
    "trainer.*": {"queue": "gpu"},
    "generations.*": {"queue": "gpu"},
    "ingest.*": {"queue": "default"},
    "accounts.*": {"queue": "default"},
}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Long jobs outlive Redis' default visibility timeout of one hour: redeliver only after a day.
# Without socket timeouts a Redis that hangs (stopped with SIGSTOP, a host swapping, a network
# that drops packets) held every send for ever, a page's with it: a send now fails within
# JOE_BROKER_SOCKET_TIMEOUT seconds, and its job waits saying the queue did not answer. Workers
# block on Redis for a second at a time (BRPOP), well inside it.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **globals().get("CELERY_BROKER_TRANSPORT_OPTIONS", {}),
    "visibility_timeout": env_int("JOE_BROKER_VISIBILITY_TIMEOUT", 86400),
    "socket_connect_timeout": 5,
    "socket_timeout": env_int("JOE_BROKER_SOCKET_TIMEOUT", 10),
}
# A queued job whose message the broker has nowhere for this long is sent again (lost_messages.py).
JOE_LOST_MESSAGE_AFTER = env_int("JOE_LOST_MESSAGE_AFTER", 120)

# Every handler takes reset and invite tokens out of what it writes (joe_site.log_redaction):
# Django logs each 4xx and 5xx with its path ("Gone: /accounts/signup/<token>/").
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secrets": {"()": "joe_site.log_redaction.RedactSecrets"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_secrets"],
        },
        # runserver's line per request, as Django writes it, with the same filter.
        "django.server": {
            "class": "logging.StreamHandler",
            "formatter": "django.server",
            "filters": ["redact_secrets"],
        },
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's own console handler would print each of its records a second time.
        "django": {"handlers": [], "level": "INFO"},
        "django.db.backends": {"level": "WARNING"},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
    },
}
