#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real (the README's `make test` runs
# this first). Each package is here because a test starts the real program:
#   ffmpeg                      video files and an MJPEG-over-HTTP camera
#   openssh-server/-client      a real sshd on 127.0.0.1 plays the device (flash, remote bench)
#   python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-{rtsp,plugins-base,plugins-good,plugins-bad}
#                               an RTSP camera (gst-rtsp-server, run by the system python3)
#   mosquitto                   an MQTT broker for the event sink
#   chromium                    a real browser opens the live view
#   systemd                     systemd-analyze verifies the unit `edgekit service install`
#                               writes (tests/devices/test_service.py; no running systemd needed)
#   qemu-user-static debootstrap  an emulated Raspberry Pi 5 (arm64 Debian root, aarch64
#                               Python under qemu-user): tests/emulated_pi.py
# It installs only what is missing, so a prepared machine pays one dpkg query.
# Without root (and without passwordless sudo) it installs nothing, says which packages are
# missing and how to get them; the tests that need them are then skipped with that hint.
set -euo pipefail

PACKAGES=(
  make ffmpeg openssh-server openssh-client
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  mosquitto chromium systemd
  qemu-user-static debootstrap
)

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  echo "system-deps: not a Debian/Ubuntu machine; install by hand: ${PACKAGES[*]}" >&2
  exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "system-deps: not root and no passwordless sudo: NOT installing ${missing[*]}." >&2
  echo "system-deps: run 'sudo apt-get install ${missing[*]}' to run every test;" \
       "tests that need them are skipped, each saying which package it needs." >&2
  exit 0
fi

echo "system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
