# The gateway image: gunicorn with uvicorn workers, as deployed. Build: docker build -t vx11-gateway .
# Runs as an unprivileged user; the code is root-owned and read-only to it, only /app/data (the
# SQLite default) is writable. Configuration comes from the environment (.env.example).
# The workers' metrics samples go to PROMETHEUS_MULTIPROC_DIR, which gunicorn's master creates
# and empties at start (gunicorn.conf.py): keep it on a tmpfs (compose mounts one at /tmp).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VX11_BIND=0.0.0.0:8000 \
    DATABASE_URL=sqlite:////app/data/db.sqlite3 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/vx11-metrics

WORKDIR /app
RUN groupadd --system vx11 && useradd --system --gid vx11 --home-dir /app --no-create-home vx11

# Runtime requirements only; the dev tools stay out of the image. Every package has a wheel
# (psycopg's binary one included), so no compiler is needed.
COPY requirements/base.txt requirements/base.txt
RUN pip install -r requirements/base.txt

COPY manage.py gunicorn.conf.py ./
COPY vx11site vx11site
COPY shubproxy shubproxy
COPY standin standin
COPY canon canon
COPY scripts/docker-entrypoint.sh scripts/docker-entrypoint.sh

# collectstatic needs settings, not secrets: a throwaway build-time key in debug mode. The
# files land in /app/staticfiles, where WhiteNoise serves them from.
RUN DJANGO_DEBUG=true DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput \
    && chmod 0755 scripts/docker-entrypoint.sh \
    && mkdir -p /app/data && chown vx11:vx11 /app/data

USER vx11
EXPOSE 8000
# /healthz answers without I/O; DJANGO_ALLOWED_HOSTS must keep 127.0.0.1 for this probe.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]

# Migrates and loads the canon (unless VX11_MIGRATE_ON_START=false), then execs the command, so
# gunicorn's master is PID 1 and gets the SIGTERM of `docker stop` itself.
ENTRYPOINT ["/app/scripts/docker-entrypoint.sh"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "vx11site.asgi:application"]
