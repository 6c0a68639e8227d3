#!/usr/bin/env bash
# `make run`: the gateway as deployed, gunicorn with uvicorn workers (gunicorn.conf.py;
# VX11_BIND, GUNICORN_CMD_ARGS and WEB_CONCURRENCY are honoured), with the shub stand-in on
# VX11_STANDIN_PORT (8007) unless VX11_SHUB_UPSTREAM is set, and a private Redis unless
# VX11_REDIS_URL or REDIS_URL is. Ctrl-C or SIGTERM stops gunicorn first, then the others.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate

say() { echo "vx11-gateway: $*"; }

# Every address is checked before anything starts: a second `make run` stops here, in one line,
# instead of reusing the first one's stand-in and starting a Redis of its own.
addresses=$(python scripts/addresses.py)
eval "$addresses"  # gateway_url, standin_url, metrics_url

export DJANGO_DEBUG="${DJANGO_DEBUG:-false}"

# Local demo: production mode needs a secret key, a gateway token and the EntryGuard secret
# it shares with shub. When they are not given, generate them once into a private file (each
# one missing from an older file is added) and say where it is (never print the secrets).
demo=.local/demo.env
demo_secrets=(DJANGO_SECRET_KEY VX11_GATEWAY_TOKEN VX11_TENTACULO_LINK_SHARED_SECRET)
needed=""
for name in "${demo_secrets[@]}"; do [ -n "${!name:-}" ] || needed=yes; done
if [ -n "$needed" ]; then
  mkdir -p .local
  (umask 077 && touch "$demo" && python - "$demo" <<'PY'
import secrets, sys
path = sys.argv[1]
have = {line.split("=", 1)[0] for line in open(path) if "=" in line}
new = {
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "VX11_GATEWAY_TOKEN": secrets.token_urlsafe(32),
    "VX11_TENTACULO_LINK_SHARED_SECRET": secrets.token_hex(32),
}
with open(path, "a") as out:
    for name, value in new.items():
        if name not in have:
            out.write(f"{name}={value}\n")
PY
  )
  for name in "${demo_secrets[@]}"; do
    [ -n "${!name:-}" ] || export "$name=$(sed -n "s/^$name=//p" "$demo")"
  done
  say "local demo secrets (Django key, gateway token, EntryGuard secret) are in $demo"
  echo "  try: curl -H \"X-VX11-GW-TOKEN: \$(sed -n 's/^VX11_GATEWAY_TOKEN=//p' $demo)\" $gateway_url/shub/status"
fi

python manage.py migrate --noinput >/dev/null
python manage.py collectstatic --noinput >/dev/null
python manage.py load_canon

# Each server runs in a session of its own, so that a Ctrl-C (or a kill of make's process group)
# reaches this script alone, which stops them in order: gunicorn first, draining while its
# upstream and Redis still answer. Should this script die without stopping them, they get
# SIGTERM from the kernel (setpriv's parent-death signal) instead of living on.
server() {
  if command -v setsid >/dev/null && command -v setpriv >/dev/null; then
    setsid setpriv --pdeathsig TERM -- "$@" &
  else
    "$@" &
  fi
}
gunicorn_pid="" others=()
# `wait` returns early when a trapped signal arrives: wait until each process is really gone,
# or Redis would stop under a draining gunicorn.
wait_gone() {
  while kill -0 "$1" 2>/dev/null; do wait "$1" 2>/dev/null || true; done
}
stop() {
  # A second Ctrl-C (or make's own SIGTERM, right after ours) does not cut the drain short. A
  # no-op rather than '': bash warns about a signal already pending when its trap becomes ''.
  trap : INT TERM HUP
  if [ -n "$gunicorn_pid" ]; then
    kill -TERM "$gunicorn_pid" 2>/dev/null || true
    wait_gone "$gunicorn_pid"
  fi
  for pid in "${others[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${others[@]}"; do wait_gone "$pid"; done
  gunicorn_pid="" others=()
}
trap 'stop; exit 0' INT TERM HUP  # asked to stop: a clean stop is a success
trap stop EXIT

if [ -n "$standin_url" ]; then
  export VX11_SHUB_UPSTREAM="$standin_url"
  # As strict as shub: it checks every signature with the gateway's EntryGuard secret.
  server python -m standin --host 127.0.0.1 --port "${standin_url##*:}"
  others+=($!)
  say "started the shub stand-in on $standin_url, checking EntryGuard signatures (set VX11_SHUB_UPSTREAM to use a real shub)"
fi

# No Redis configured: the health cache needs one shared store so that a cache clear reaches
# every worker. Start a private redis-server when one is installed; otherwise run one worker
# on the per-process memory cache.
if [ -z "${VX11_REDIS_URL:-}" ] && [ -z "${REDIS_URL:-}" ]; then
  if command -v redis-server >/dev/null; then
    redis_port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    server redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
      --daemonize no --logfile "" >/dev/null
    others+=($!)
    export VX11_REDIS_URL="redis://127.0.0.1:$redis_port/0"
    say "started a private redis-server on 127.0.0.1:$redis_port for the health cache"
  else
    export WEB_CONCURRENCY=1
    say "no Redis (set VX11_REDIS_URL, or install redis-server): one worker, in-memory cache"
  fi
fi

say "upstream $VX11_SHUB_UPSTREAM; gateway on $gateway_url (admin: $gateway_url/admin/)"
if [ -n "$metrics_url" ]; then
  # The workers' samples: emptied by gunicorn at start (gunicorn.conf.py), summed by each scrape.
  export PROMETHEUS_MULTIPROC_DIR="$(pwd)/.local/metrics"
  say "metrics on $metrics_url (Prometheus text format; VX11_METRICS_ENABLED=false turns them off)"
fi
say "try: curl $gateway_url/shub/health    stop: Ctrl-C"
server gunicorn -c gunicorn.conf.py vx11site.asgi:application
gunicorn_pid=$!
status=0
wait "$gunicorn_pid" || status=$?
gunicorn_pid=""  # it exited by itself: stop the others, and pass its status on
exit "$status"
