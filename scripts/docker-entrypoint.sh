#!/bin/sh
# Container start: migrate and load the canon (both idempotent), then exec the command (gunicorn),
# which so becomes PID 1 and receives `docker stop`'s SIGTERM itself.
# Several instances on one database: migrate once elsewhere (docker-compose.prod.yml's `migrate`
# service) and set VX11_MIGRATE_ON_START=false on the instances.
set -eu
case "$(printf '%s' "${VX11_MIGRATE_ON_START:-true}" | tr '[:upper:]' '[:lower:]')" in
  true | 1 | yes | on)
    python manage.py migrate --noinput
    python manage.py load_canon
    ;;
  false | 0 | no | off) ;;
  *)
    echo "vx11-gateway: configuration error: VX11_MIGRATE_ON_START='$VX11_MIGRATE_ON_START' is not a boolean (use true/false, 1/0, yes/no, on/off)" >&2
    exit 2
    ;;
esac
exec "$@"
