#!/bin/sh
# Install the aigw gateway from this bundle with no network at all: every wheel is in wheels/,
# pinned by hash in requirements.txt (pip refuses anything else).
#   sh install.sh            install into $AIGW_PREFIX (default /opt/aigw)
#   sh install.sh --system   also create the aigw user, its log folder and the systemd services, and start them
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix="${AIGW_PREFIX:-/opt/aigw}"
python="${AIGW_PYTHON:-python3.11}"

"$python" -m venv "$prefix/venv"
"$prefix/venv/bin/python" -m pip install --no-index --require-hashes --no-cache-dir --disable-pip-version-check \
  --find-links "$here/wheels" -r "$here/requirements.txt"
mkdir -p "$prefix/etc"
cp "$here/gateway.json" "$prefix/etc/gateway.json"

if [ "${1:-}" = "--system" ]; then
  id aigw >/dev/null 2>&1 || useradd --system --no-create-home --shell /sbin/nologin aigw
  install -d -o aigw -g aigw -m 0750 /var/log/aigw
  install -m 0644 "$here/aigw-gateway.service" /etc/systemd/system/aigw-gateway.service
  install -m 0755 "$here/lifecycle-watch.sh" /usr/local/bin/aigw-lifecycle-watch
  install -m 0644 "$here/aigw-lifecycle-watch.service" /etc/systemd/system/aigw-lifecycle-watch.service
  systemctl daemon-reload
  systemctl enable --now aigw-gateway.service aigw-lifecycle-watch.service
fi
