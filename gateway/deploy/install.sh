#!/bin/sh
# Install the aigw gateway from this bundle with no network at all: every wheel is in wheels/,
# pinned by hash in requirements.txt (pip refuses anything else).
#   sh install.sh            install into $AIGW_PREFIX (default /opt/aigw)
#   sh install.sh --system   also create the aigw user, its log folder and the systemd services (the gateway's
#                            workers, its drain on termination, its log rotation), and start them
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix="${AIGW_PREFIX:-/opt/aigw}"
python="${AIGW_PYTHON:-python3.11}"

# The wheels in wheels/ are built for one CPython version (python-version, written with the bundle):
# another interpreter would fail in pip with a message about missing wheels, or not at all until run.
required=$(cat "$here/python-version")
found=$("$python" -c 'import platform, sys; print(platform.python_implementation(), "%d.%d" % sys.version_info[:2])' \
  2>/dev/null) || found="not a Python that runs"
if [ "$found" != "CPython $required" ]; then
  echo "aigw: $python is $found; this bundle's wheels are built for CPython $required." >&2
  echo "aigw: install python$required and python$required-pip, or point AIGW_PYTHON at a CPython $required." >&2
  exit 3
fi

"$python" -m venv "$prefix/venv"
"$prefix/venv/bin/python" -m pip install --no-index --require-hashes --no-cache-dir --disable-pip-version-check \
  --find-links "$here/wheels" -r "$here/requirements.txt"
mkdir -p "$prefix/etc"
cp "$here/gateway.json" "$prefix/etc/gateway.json"

if [ "${1:-}" = "--system" ]; then
  id aigw >/dev/null 2>&1 || useradd --system --no-create-home --shell /sbin/nologin aigw
  install -d -o aigw -g aigw -m 0750 /var/log/aigw
  install -m 0644 "$here/aigw-gateway@.service" /etc/systemd/system/aigw-gateway@.service
  install -m 0644 "$here/aigw-gateway.target" /etc/systemd/system/aigw-gateway.target
  install -m 0755 "$here/lifecycle-watch.sh" /usr/local/bin/aigw-lifecycle-watch
  install -m 0644 "$here/aigw-lifecycle-watch.service" /etc/systemd/system/aigw-lifecycle-watch.service
  install -m 0644 "$here/logrotate.conf" "$prefix/etc/logrotate.conf"
  install -m 0644 "$here/aigw-logrotate.service" /etc/systemd/system/aigw-logrotate.service
  install -m 0644 "$here/aigw-logrotate.timer" /etc/systemd/system/aigw-logrotate.timer
  systemctl daemon-reload
  systemctl enable --now aigw-gateway.target aigw-lifecycle-watch.service aigw-logrotate.timer
fi
