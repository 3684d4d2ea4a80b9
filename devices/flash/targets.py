"""Where a bundle goes: ``ssh://user@host[:port][/install/root]``, ``user@host``, or a path.

A target names a device and an install root on it. How commands and files reach it is a
transport, picked from a registry by the target's scheme, so a new way in (adb, a serial
console) is one more entry, not one more branch.
"""

from __future__ import annotations

import asyncio
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from edgekit.errors import EdgekitError
from edgekit.registry import Registry

DEFAULT_ROOT = "edgekit"  # relative: under the login user's home on the device
CHUNK = 256 * 1024

TRANSPORTS: Registry[type[Transport]] = Registry("target scheme", {
    "ssh": "edgekit.devices.flash.ssh:SshTransport",
    "file": "edgekit.devices.flash.targets:LocalTransport",
})

Progress = Callable[[int], None]


class FlashError(EdgekitError):
    """A flash step failed; ``status`` is what the fleet summary shows.

    Statuses: ``refused`` (preflight, signature, host key), ``unreachable`` (no connection),
    ``failed`` (transfer, disk, device error; the previous version stays active).
    """

    def __init__(self, message: str, *, status: str = "failed", hint: str | None = None,
                 details: dict | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.details = details or {}


@dataclass(frozen=True, kw_only=True)
class Target:
    """One device and its install root.

    Attributes:
        uri: As the user wrote it (for messages).
        scheme: ``ssh`` or ``file``.
        root: Install root on the device (relative: under the user's home).
        python: The device's Python interpreter (a venv's python on many devices).
        identity: SSH private key file; None uses the SSH agent and default keys.
        known_hosts: known_hosts file; None means ``~/.ssh/known_hosts``.
        accept_new_host_key: Trust an unknown host on first use and record its key (never a
            changed one).
    """

    uri: str
    scheme: str
    host: str = ""
    port: int = 22
    user: str | None = None
    root: str = DEFAULT_ROOT
    python: str = "python3"
    identity: str | None = None
    known_hosts: str | None = None
    accept_new_host_key: bool = False
    connect_timeout: float = 15.0
    options: dict[str, object] = field(default_factory=dict)

    @property
    def name(self) -> str:
        if self.scheme == "file":
            return self.root
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"

    def transport(self) -> Transport:
        return TRANSPORTS.load(self.scheme)(self)


def parse_target(uri: str, **settings: object) -> Target:
    """Parses a TARGET argument; ``settings`` fill the other Target fields (python, identity...).

    Raises:
        EdgekitError: an unknown scheme or a malformed address.
    """
    given = {k: v for k, v in settings.items() if v is not None}
    if "://" not in uri and "@" in uri and not uri.startswith(("/", ".")):
        uri = f"ssh://{uri}"
    if "://" not in uri:
        return Target(uri=uri, scheme="file", root=str(Path(uri).expanduser()),
                      **{"python": sys.executable, **given})
    parts = urlsplit(uri)
    if parts.scheme not in TRANSPORTS:
        raise EdgekitError(f"Unknown target scheme '{parts.scheme}' in '{uri}'.",
                           hint=f"Use one of: {', '.join(TRANSPORTS.names())}:// or a path.")
    if parts.scheme == "file":
        return Target(uri=uri, scheme="file", root=unquote(parts.path),
                      **{"python": sys.executable, **given})
    try:
        port = parts.port or 22
    except ValueError:
        raise EdgekitError(f"'{uri}' has an invalid port.",
                           hint="Write ssh://user@host:2222/install/root.") from None
    if not parts.hostname:
        raise EdgekitError(f"'{uri}' names no host.", hint="Write ssh://user@host/install/root.")
    path = unquote(parts.path)
    root = path[3:] if path.startswith("/~/") else (path if path not in ("", "/") else None)
    target = Target(uri=uri, scheme=parts.scheme, host=parts.hostname, port=port,
                    user=unquote(parts.username) if parts.username else None)
    return replace(target, **({"root": root} if root else {}), **given)


class Transport(ABC):
    """Runs commands on a device and writes files there (async; one per device)."""

    def __init__(self, target: Target) -> None:
        self.target = target

    async def __aenter__(self) -> Transport:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @abstractmethod
    async def connect(self) -> None:
        """Opens the connection (raises FlashError: unreachable / refused)."""

    @abstractmethod
    async def close(self) -> None:
        """Closes the connection."""

    @abstractmethod
    async def run(self, argv: list[str], *, timeout: float = 600) -> tuple[int, str, str]:
        """Runs one command (a list: each argument is quoted, never interpreted by a shell)."""

    async def stream(self, argv: list[str], *, on_line: Callable[[str], None],
                     timeout: float = 600) -> tuple[int | None, str]:
        """Runs one command, calling ``on_line`` with each stdout line as it arrives.

        Returns:
            (exit status, or None when the command was killed or the connection dropped;
            stderr). This default waits for the end; transports that can stream override it.
        """
        code, out, err = await self.run(argv, timeout=timeout)
        for line in out.splitlines():
            on_line(line)
        return code, err

    @abstractmethod
    async def size(self, path: str) -> int | None:
        """A remote file's size, or None when it does not exist."""

    @abstractmethod
    async def makedirs(self, path: str) -> None:
        """Creates a remote directory and its parents."""

    @abstractmethod
    async def put(self, local: Path, remote: str, *, offset: int = 0,
                  progress: Progress | None = None) -> None:
        """Writes ``local`` to ``remote`` from byte ``offset`` on (resuming a partial upload)."""


class LocalTransport(Transport):
    """A target on this machine's filesystem: a local install, or a mounted SD card's root.

    Commands run with ``target.python`` (this interpreter by default); for a card that boots
    another architecture, give ``--board`` and flash with ``--no-health``.
    """

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _path(self, path: str) -> Path:
        return Path(path) if os.path.isabs(path) else Path.home() / path

    async def run(self, argv: list[str], *, timeout: float = 600) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=str(Path.home()))
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            raise FlashError(f"{argv[1] if len(argv) > 1 else argv[0]} timed out after "
                             f"{timeout:.0f} s on {self.target.name}.") from None
        return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")

    async def stream(self, argv: list[str], *, on_line: Callable[[str], None],
                     timeout: float = 600) -> tuple[int | None, str]:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=str(Path.home()))
        err = asyncio.ensure_future(proc.stderr.read())

        async def pump() -> None:
            while line := await proc.stdout.readline():
                on_line(line.decode(errors="replace").rstrip("\n"))
            await proc.wait()

        try:
            await asyncio.wait_for(pump(), timeout)  # asyncio.timeout needs Python 3.11
        except asyncio.TimeoutError:
            proc.kill()
            raise FlashError(f"{argv[1] if len(argv) > 1 else argv[0]} timed out after "
                             f"{timeout:.0f} s on {self.target.name}.") from None
        code = proc.returncode
        return (code if code is not None and code >= 0 else None), \
            (await err).decode(errors="replace")

    async def size(self, path: str) -> int | None:
        target = self._path(path)
        return target.stat().st_size if target.is_file() else None

    async def makedirs(self, path: str) -> None:
        self._path(path).mkdir(parents=True, exist_ok=True)

    async def put(self, local: Path, remote: str, *, offset: int = 0,
                  progress: Progress | None = None) -> None:
        def copy() -> None:
            with open(local, "rb") as src, open(self._path(remote), "ab" if offset else "wb") \
                    as dst:
                src.seek(offset)
                while block := src.read(CHUNK):
                    dst.write(block)
                    if progress:
                        progress(len(block))
                dst.flush()
                os.fsync(dst.fileno())

        await asyncio.to_thread(copy)
