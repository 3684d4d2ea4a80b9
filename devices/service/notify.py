"""systemd's notify protocol (sd_notify(3)) with the standard library: READY, WATCHDOG, STATUS.

A datagram to the socket named by $NOTIFY_SOCKET (a path, or an abstract name starting with
``@``). Outside systemd the variable is unset and every call does nothing.
"""

from __future__ import annotations

import os
import socket
import time


class Notifier:
    """Sends state lines to systemd; ``watchdog_due`` paces WATCHDOG=1 at half the interval."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())  # the watchdog may be meant for a parent
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and mine else 0.0
        self._last_ping = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *lines: str) -> bool:
        """Sends ``KEY=value`` lines in one datagram; False when there is no systemd to tell."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # Never block the control loop: a reader that stopped reading fills the
                # socket's queue (net.unix.max_dgram_qlen, 10 datagrams by default).
                sock.setblocking(False)
                sock.connect(self.address)
                sock.sendall("\n".join(lines).encode())
            return True
        except OSError:
            return False  # systemd went away (shutdown) or is not reading: nothing to do

    def watchdog_due(self) -> bool:
        """Whether half the watchdog interval passed since the last ping."""
        return bool(self.watchdog_s) and time.monotonic() - self._last_ping >= self.watchdog_s / 2

    def ping(self, status: str | None = None) -> None:
        """WATCHDOG=1 (and a STATUS line for `systemctl status`)."""
        self._last_ping = time.monotonic()
        self.send("WATCHDOG=1", *([f"STATUS={status}"] if status else []))
