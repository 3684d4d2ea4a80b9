"""The SSH transport (asyncssh): commands over exec channels, files over SFTP.

Host keys are checked against known_hosts; an unknown host is refused unless the target asks
for trust on first use, and a host whose key CHANGED is always refused. Every command is a list
joined with shlex.quote, so a path or name holding spaces or ``$(...)`` reaches the device as
one literal argument.
"""

from __future__ import annotations

import asyncio
import shlex
import socket
from collections.abc import Callable
from pathlib import Path

from edgekit.errors import require

from .targets import CHUNK, FlashError, Progress, Target, Transport


class SshTransport(Transport):
    """One SSH connection to one device."""

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self._conn = None
        self._sftp = None

    def _known_hosts_file(self) -> Path:
        return Path(self.target.known_hosts or "~/.ssh/known_hosts").expanduser()

    def _known_hosts(self) -> object:
        path = self._known_hosts_file()
        return str(path) if path.is_file() else b""  # no file: every host is unknown

    def _has_entry(self) -> bool:
        asyncssh = require("asyncssh", extra="flash", purpose="flashing over SSH")
        path = self._known_hosts_file()
        if not path.is_file():
            return False
        port = self.target.port if self.target.port != 22 else None
        try:
            addr = socket.gethostbyname(self.target.host)
        except OSError:
            addr = self.target.host
        keys = asyncssh.read_known_hosts(str(path)).match(self.target.host, addr, port)
        return any(keys[:2])

    async def connect(self) -> None:
        asyncssh = require("asyncssh", extra="flash", purpose="flashing over SSH")
        t = self.target
        kwargs = {"port": t.port, "username": t.user, "connect_timeout": t.connect_timeout}
        if t.identity:
            kwargs["client_keys"] = [str(Path(t.identity).expanduser())]
        try:
            try:
                self._conn = await asyncssh.connect(t.host, known_hosts=self._known_hosts(),
                                                    **kwargs)
            except asyncssh.HostKeyNotVerifiable:
                if not t.accept_new_host_key or self._has_entry():
                    raise
                self._conn = await asyncssh.connect(t.host, known_hosts=None, **kwargs)
                self._remember_host_key()
        except asyncssh.HostKeyNotVerifiable as exc:
            changed = self._has_entry()
            what = ("does not match the key recorded" if changed else "is not recorded")
            raise FlashError(
                f"{t.name}: the host key {what} in {self._known_hosts_file()}; refusing to "
                f"connect ({exc.reason}).", status="refused",
                hint=("If the device was reinstalled, remove its old key with `ssh-keygen -R "
                      f"'[{t.host}]:{t.port}'` and check the new one." if changed else
                      "Connect once with ssh to check and record its key, or pass "
                      "--accept-new-host-key to trust it on first use."),
            ) from None
        except asyncssh.PermissionDenied:
            raise FlashError(f"{t.name}: SSH authentication failed.", status="refused",
                             hint="Give the key the device accepts with --identity.") from None
        except (OSError, asyncio.TimeoutError, asyncssh.Error) as exc:
            raise FlashError(f"{t.name}: cannot connect: {exc}.", status="unreachable",
                             hint="Check the address, port and that sshd runs on it.") from None

    def _remember_host_key(self) -> None:
        key = self._conn.get_server_host_key()
        path = self._known_hosts_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        host = self.target.host if self.target.port == 22 else \
            f"[{self.target.host}]:{self.target.port}"
        with open(path, "a") as handle:
            handle.write(f"{host} {key.export_public_key().decode().strip()}\n")

    async def close(self) -> None:
        if self._sftp is not None:
            self._sftp.exit()
            self._sftp = None
        if self._conn is not None:
            self._conn.close()
            try:
                await asyncio.wait_for(self._conn.wait_closed(), 5)
            except (asyncio.TimeoutError, OSError):
                pass
            self._conn = None

    async def _client(self):
        if self._sftp is None:
            self._sftp = await self._conn.start_sftp_client()
        return self._sftp

    async def run(self, argv: list[str], *, timeout: float = 600) -> tuple[int, str, str]:
        asyncssh = require("asyncssh", extra="flash", purpose="flashing over SSH")
        try:
            result = await self._conn.run(shlex.join(argv), timeout=timeout)
        except asyncssh.TimeoutError:
            raise FlashError(f"{self.target.name}: '{argv[2] if len(argv) > 2 else argv[0]}' "
                             f"timed out after {timeout:.0f} s.") from None
        except (OSError, asyncssh.Error) as exc:
            raise FlashError(f"{self.target.name}: the connection dropped: {exc}.") from None
        code = result.exit_status if result.exit_status is not None else 255
        return code, str(result.stdout or ""), str(result.stderr or "")

    async def stream(self, argv: list[str], *, on_line: Callable[[str], None],
                     timeout: float = 600) -> tuple[int | None, str]:
        """Runs one command and hands each stdout line over as it arrives.

        A killed command or a dropped connection returns status None (no exit status came).
        """
        asyncssh = require("asyncssh", extra="flash", purpose="flashing over SSH")

        async def pump() -> tuple[int | None, str]:
            async with self._conn.create_process(shlex.join(argv)) as process:
                async for line in process.stdout:
                    on_line(line.rstrip("\n"))
                await process.wait(check=False)
                err = await process.stderr.read()
                killed = process.exit_signal is not None or process.exit_status is None
                return (None if killed else process.exit_status), str(err or "")

        try:
            return await asyncio.wait_for(pump(), timeout)
        except asyncio.TimeoutError:
            raise FlashError(f"{self.target.name}: '{argv[2] if len(argv) > 2 else argv[0]}' "
                             f"timed out after {timeout:.0f} s.") from None
        except (OSError, asyncssh.Error):
            return None, "the connection dropped"

    async def size(self, path: str) -> int | None:
        asyncssh = require("asyncssh")
        sftp = await self._client()
        try:
            return (await sftp.stat(path)).size
        except asyncssh.SFTPNoSuchFile:
            return None

    async def makedirs(self, path: str) -> None:
        await (await self._client()).makedirs(path, exist_ok=True)

    async def put(self, local: Path, remote: str, *, offset: int = 0,
                  progress: Progress | None = None) -> None:
        sftp = await self._client()
        async with sftp.open(remote, "r+b" if offset else "wb") as dst:
            with open(local, "rb") as src:
                src.seek(offset)
                position = offset
                while block := src.read(CHUNK):
                    await dst.write(block, position)
                    position += len(block)
                    if progress:
                        progress(len(block))
            try:
                await dst.fsync()  # fsync@openssh.com: the bytes are on the device's disk
            except require("asyncssh").SFTPError:
                pass  # a server without the extension: the sha256 check still guards the file
