"""Django settings for vx11-gateway. Everything deployment-specific comes from the environment,
read once here; the gateway's own settings become one frozen ``GatewayConfig`` (``VX11``)."""

import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import NoReturn

import dj_database_url

from shubproxy.config import (
    ConfigError,
    load_checked,
    parse_bool,
    parse_choice,
    parse_non_negative_int,
    parse_origins,
    parse_positive_int,
    parse_proxy_ssl_header,
)
from shubproxy.store.connection import django_cache

BASE_DIR = Path(__file__).resolve().parent.parent


def _fail(message: str) -> NoReturn:
    # A clean message and exit status, not a traceback, for start-up and manage.py alike.
    sys.stderr.write(f"vx11-gateway: configuration error: {message}\n")
    raise SystemExit(2)


_env = os.environ
try:
    VX11 = load_checked(_env)
    ALLOWED_HOSTS = list(VX11.allowed_hosts)
    # Deployment security (`manage.py check --deploy`; README, "Deployment"). These act on the
    # site (admin, /healthz): /shub/ has its own handler without site middleware.
    # TLS usually ends at a load balancer: trust its X-Forwarded-Proto only when told to, since
    # a client talking to the gateway directly could send the header itself.
    SECURE_PROXY_SSL_HEADER = parse_proxy_ssl_header(_env, "DJANGO_SECURE_PROXY_SSL_HEADER")
    CSRF_TRUSTED_ORIGINS = list(parse_origins(_env, "DJANGO_CSRF_TRUSTED_ORIGINS"))
    # Off by default: the gateway itself listens on plain HTTP (load balancer, health checks,
    # the test suite on 127.0.0.1), and the load balancer is the place that redirects.
    SECURE_SSL_REDIRECT = parse_bool(_env, "DJANGO_SECURE_SSL_REDIRECT", False)
    SECURE_HSTS_SECONDS = parse_non_negative_int(_env, "DJANGO_SECURE_HSTS_SECONDS", 0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = parse_bool(
        _env, "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False
    )
    SECURE_HSTS_PRELOAD = parse_bool(_env, "DJANGO_SECURE_HSTS_PRELOAD", False)
    # Session and CSRF cookies only over HTTPS, unless DEBUG (or asked not to).
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = parse_bool(
        _env, "DJANGO_SECURE_COOKIES", not VX11.debug
    )
    _ADMIN_LOGIN_FAILURE_LIMIT = parse_positive_int(_env, "VX11_ADMIN_LOGIN_FAILURE_LIMIT", 5)
    _ADMIN_LOCKOUT_SECONDS = parse_positive_int(_env, "VX11_ADMIN_LOCKOUT_SECONDS", 900)
    _LOG_LEVEL = parse_choice(
        _env, "VX11_LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), "INFO"
    )
except ConfigError as exc:
    _fail(str(exc))

DEBUG = VX11.debug
SECRET_KEY = _env.get("DJANGO_SECRET_KEY", "").strip()
if not SECRET_KEY:
    SECRET_KEY = "insecure-development-only-key"  # noqa: S105 - reachable only with DEBUG on

# Probes (container HEALTHCHECK, load balancer) talk plain HTTP to the process itself.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",  # failed admin logins, throttled per user and per IP (below)
    # The canon and its admin: the only app with models. The proxy (``shubproxy``) is not a
    # Django app: it has no models, templates or commands, and never touches the database.
    "canon",
]

# Only the site (admin, static) passes through these: /shub/ has its own handler without them.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A Content-Security-Policy on every site page (CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    # Serves /static/ (the admin's CSS and JS) from the gunicorn/uvicorn processes themselves,
    # no nginx needed. Sync-only, which is fine here: /shub/ never passes through MIDDLEWARE.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it answers a locked-out login with 429.
    "axes.middleware.AxesMiddleware",
]

# Failed admin logins: after VX11_ADMIN_LOGIN_FAILURE_LIMIT of them, the username and the
# client address (each on its own) are locked out for VX11_ADMIN_LOCKOUT_SECONDS, whatever the
# password tried next. The address is the client's as the gateway sees it (VX11_TRUSTED_PROXIES).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = _ADMIN_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(seconds=_ADMIN_LOCKOUT_SECONDS)
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "vx11site.security.client_ip"
AXES_LOCKOUT_TEMPLATE = "locked_out.html"

# The admin runs on its own files only: no inline script or style, no framing, forms posted
# back to this site only. (tests/canon/test_admin_browser.py checks the admin works under it.)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

ROOT_URLCONF = "vx11site.urls"
ASGI_APPLICATION = "vx11site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "vx11site" / "templates"],  # the landing, 404 and lockout pages
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

# SQLite by default; PostgreSQL (psycopg 3) for several instances sharing one database.
# Connections close after each request (CONN_MAX_AGE 0), as Django advises under ASGI.
_DATABASE_URL = _env.get("DATABASE_URL", "").strip() or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
try:
    DATABASES = {"default": dj_database_url.parse(_DATABASE_URL)}
except ValueError as exc:
    _fail(f"DATABASE_URL is not a usable database URL ({exc})")
if DATABASES["default"]["ENGINE"] not in {
    "django.db.backends.sqlite3",
    "django.db.backends.postgresql",
}:
    _fail("DATABASE_URL must be a sqlite:// or postgres:// URL")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The health cache (shubproxy/healthcache/). With Redis: django-redis, built from the same
# VX11_REDIS_* settings as the gateway's own async connections (shubproxy/store/connection.py),
# so both sides talk to Redis the same way. Without: a per-process memory cache, correct for
# one worker (scripts/run.sh starts a private Redis, or runs one worker, when none is configured).
_CACHE_COMMON = {
    "KEY_PREFIX": VX11.cache.key_prefix,
    "KEY_FUNCTION": "shubproxy.healthcache.backend.make_key",
}
if VX11.redis.enabled:
    CACHES = {"default": {**django_cache(VX11.redis), **_CACHE_COMMON}}
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", **_CACHE_COMMON}
    }

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where `manage.py collectstatic` puts the files WhiteNoise serves (scripts/run.sh runs it).
STATIC_ROOT = Path(_env.get("DJANGO_STATIC_ROOT", "").strip() or BASE_DIR / "staticfiles")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING_CONFIG = "shubproxy.logs.configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "shubproxy.logs.JsonFormatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
        }
    },
    "loggers": {
        "vx11": {"handlers": ["stdout"], "level": _LOG_LEVEL, "propagate": False},
        "django": {"handlers": ["stdout"], "level": "WARNING", "propagate": False},
    },
    # Everything else (Python warnings, which Django routes through logging, and any library's
    # records) as JSON too: nothing on stdout or stderr that is not one JSON object per line.
    "root": {"handlers": ["stdout"], "level": "WARNING"},
}
