#!/usr/bin/env bash
# Starts the gateway as deployed: gunicorn with uvicorn workers on 127.0.0.1:8000 (see
# gunicorn.conf.py; GUNICORN_CMD_ARGS and WEB_CONCURRENCY are honoured). Called by `make run`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate

export DJANGO_DEBUG="${DJANGO_DEBUG:-false}"

# Local demo: production mode needs a secret key and a gateway token. When none are given,
# generate them once into a private file and say where it is (never print the secrets).
if [ -z "${DJANGO_SECRET_KEY:-}" ] || [ -z "${VX11_GATEWAY_TOKEN:-}" ]; then
  demo=.local/demo.env
  if [ ! -f "$demo" ]; then
    mkdir -p .local
    (umask 077 && python - > "$demo" <<'PY'
import secrets
print(f"DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}")
print(f"VX11_GATEWAY_TOKEN={secrets.token_urlsafe(32)}")
PY
    )
  fi
  export DJANGO_SECRET_KEY="${DJANGO_SECRET_KEY:-$(sed -n 's/^DJANGO_SECRET_KEY=//p' "$demo")}"
  export VX11_GATEWAY_TOKEN="${VX11_GATEWAY_TOKEN:-$(sed -n 's/^VX11_GATEWAY_TOKEN=//p' "$demo")}"
  echo "vx11-gateway: local demo secret key and gateway token are in $demo"
  echo "  try: curl -H \"X-VX11-GW-TOKEN: \$(sed -n 's/^VX11_GATEWAY_TOKEN=//p' $demo)\" http://127.0.0.1:8000/shub/status"
fi

python manage.py migrate --noinput >/dev/null
python manage.py collectstatic --noinput >/dev/null
python manage.py load_canon

# No upstream configured: serve the bundled shub stand-in on 127.0.0.1:8007.
pids=()
if [ -z "${VX11_SHUB_UPSTREAM:-}" ]; then
  export VX11_SHUB_UPSTREAM="http://127.0.0.1:8007"
  if python -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:8007/health", timeout=1)' 2>/dev/null; then
    echo "vx11-gateway: something already answers on 127.0.0.1:8007; using it as the upstream"
  else
    python -m standin --host 127.0.0.1 --port 8007 &
    pids+=($!)
    echo "vx11-gateway: started the shub stand-in on http://127.0.0.1:8007 (set VX11_SHUB_UPSTREAM to use a real shub)"
  fi
fi

# No Redis configured: the health cache needs one shared store so that a cache clear reaches
# every worker. Start a private redis-server when one is installed; otherwise run one worker
# on the per-process memory cache.
if [ -z "${VX11_REDIS_URL:-}" ] && [ -z "${REDIS_URL:-}" ]; then
  if command -v redis-server >/dev/null; then
    redis_port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
      --logfile "" >/dev/null &
    pids+=($!)
    export VX11_REDIS_URL="redis://127.0.0.1:$redis_port/0"
    echo "vx11-gateway: started a private redis-server on 127.0.0.1:$redis_port for the health cache"
  else
    export WEB_CONCURRENCY=1
    echo "vx11-gateway: no Redis (set VX11_REDIS_URL, or install redis-server): one worker, in-memory cache"
  fi
fi
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

echo "vx11-gateway: upstream $VX11_SHUB_UPSTREAM; try: curl http://127.0.0.1:8000/shub/health"
gunicorn -c gunicorn.conf.py vx11site.asgi:application
