"""Django settings for vx11-gateway. Everything deployment-specific comes from the environment,
read once here; the gateway's own settings become one frozen ``GatewayConfig`` (``VX11``)."""

import os
import sys
from pathlib import Path

import dj_database_url

from shubproxy.config import ConfigError, load_checked

BASE_DIR = Path(__file__).resolve().parent.parent


def _fail(message: str) -> None:
    # A clean message and exit status, not a traceback, for start-up and manage.py alike.
    sys.stderr.write(f"vx11-gateway: configuration error: {message}\n")
    raise SystemExit(2)


try:
    VX11 = load_checked(os.environ)
except ConfigError as exc:
    _fail(str(exc))

DEBUG = VX11.debug
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "").strip()
if not SECRET_KEY:
    SECRET_KEY = "insecure-development-only-key"  # noqa: S105 - reachable only with DEBUG on

ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
    if h.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "shubproxy",
]

# Only the site (admin, static) passes through these: /shub/ has its own handler without them.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves /static/ (the admin's CSS and JS) from the gunicorn/uvicorn processes themselves,
    # no nginx needed. Sync-only, which is fine here: /shub/ never passes through MIDDLEWARE.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "vx11site.urls"
ASGI_APPLICATION = "vx11site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

try:
    DATABASES = {"default": dj_database_url.config(default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
except ValueError as exc:
    _fail(f"DATABASE_URL is not a usable database URL ({exc})")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The health cache (shubproxy/cache.py). With Redis: django-redis, whose async methods talk
# redis.asyncio on the event loop. Without: a per-process memory cache, correct for one worker
# (scripts/run.sh starts a private Redis, or runs one worker, when none is configured).
_CACHE_COMMON = {
    "KEY_PREFIX": VX11.cache.key_prefix,
    "KEY_FUNCTION": "shubproxy.cache_backend.make_key",
}
if VX11.cache.redis_url:
    CACHES = {
        "default": {
            "BACKEND": "shubproxy.cache_backend.AsyncRedisCache",
            "LOCATION": VX11.cache.redis_url,
            # Fail fast: a cache that does not answer in this time is skipped (fail open).
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
            **_CACHE_COMMON,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "shubproxy.cache_backend.AsyncLocMemCache", **_CACHE_COMMON}}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where `manage.py collectstatic` puts the files WhiteNoise serves (scripts/run.sh runs it).
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT") or BASE_DIR / "staticfiles")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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
        "vx11": {"handlers": ["stdout"], "level": os.environ.get("VX11_LOG_LEVEL", "INFO")},
        "django": {"handlers": ["stdout"], "level": "WARNING", "propagate": False},
    },
}
