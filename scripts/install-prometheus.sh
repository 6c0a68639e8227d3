#!/bin/sh
# Installs Debian's prometheus package (prometheus and promtool, for the tests in tests/deploy)
# without leaving its service running: the tests start a prometheus of their own on a free
# port, and the packaged one would only hold port 9090 and scrape and write for nothing.
# `make test` runs this as root when the binaries are missing.
set -eu

# invoke-rc.d and deb-systemd-invoke ask /usr/sbin/policy-rc.d whether a package's scripts may
# start its service; 101 means no (Docker images ship one like it). Ours is removed again.
created=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  created=yes
fi
trap '[ -z "$created" ] || rm -f /usr/sbin/policy-rc.d' EXIT

apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null

# Should the service have started all the same (a policy-rc.d that allows it), stop it, and on
# systemd keep it from starting at boot.
if [ -d /run/systemd/system ]; then
  systemctl disable --now prometheus.service >/dev/null 2>&1 || true
elif [ -x /etc/init.d/prometheus ]; then
  /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi
