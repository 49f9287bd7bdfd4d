#!/bin/sh
# Install the venue gate as a kiosk (or a handheld) on a Debian-like system: Raspberry Pi OS,
# Debian, Ubuntu. Run as root from a checkout of the project:
#     sudo hardware/deploy/install.sh
# Idempotent: run it again to update (new code into the venv, unit and rules refreshed).
# It does not enable or start the unit: enrol the gate and set its PIN first (README.md,
# "Setting up a kiosk or a handheld"), then `systemctl enable --now venue-gate`.
set -eu

SRC=$(cd "$(dirname "$0")/../.." && pwd)   # the project checkout
PREFIX=/opt/venue-gate                      # the unit runs $PREFIX/venv/bin/gate-scanner
STATE=/var/lib/venue-gate                   # the gate database (the unit's StateDirectory)
USER_NAME=venue-gate

[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }

# Python 3.11+ with venv; sound player for the verdict tones.
if ! python3 -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "install.sh: needs python3 >= 3.11 with the venv module (apt-get install python3-venv)" >&2
    exit 1
fi
command -v aplay >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq alsa-utils >/dev/null || true

# A system user of its own: no login shell, no home beyond its state directory.
if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$STATE" --no-create-home \
        --shell /usr/sbin/nologin --comment "venue gate scanner" "$USER_NAME"
fi
for g in audio gpio; do  # sound and the relay, where the board has them
    if getent group "$g" >/dev/null; then usermod -aG "$g" "$USER_NAME"; fi
done
install -d -o "$USER_NAME" -g "$USER_NAME" -m 0700 "$STATE"

# The app in a venv of its own under /opt (ProtectHome= hides /home from the service).
install -d -m 0755 "$PREFIX"
[ -x "$PREFIX/venv/bin/python" ] || python3 -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/python" -m pip install --quiet --upgrade pip
"$PREFIX/venv/bin/python" -m pip install --quiet --upgrade "$SRC[serial]"
"$PREFIX/venv/bin/python" -m pip install --quiet --no-deps --force-reinstall "$SRC"  # same version, new code
install -m 0644 "$SRC/README.md" "$PREFIX/README.md"

# Unit and udev rules.
install -m 0644 "$SRC/hardware/deploy/venue-gate.service" /etc/systemd/system/venue-gate.service
install -m 0644 "$SRC/hardware/deploy/70-venue-gate.rules" /etc/udev/rules.d/70-venue-gate.rules
systemd-analyze verify /etc/systemd/system/venue-gate.service
if command -v udevadm >/dev/null; then
    udevadm control --reload
    udevadm trigger --subsystem-match=video4linux --subsystem-match=media --subsystem-match=tty
fi
systemctl daemon-reload

echo "installed: $PREFIX/venv/bin/gate-scanner, database $STATE/gate.db"
if systemctl is-enabled --quiet venue-gate 2>/dev/null; then
    systemctl restart venue-gate && echo "venue-gate restarted"
else
    echo "next: enrol, set the PIN, then: systemctl enable --now venue-gate (README.md)"
fi
