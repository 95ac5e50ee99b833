"""``ssh://`` and ``sftp://`` remotes through paramiko (the ``remote`` extra)."""

from __future__ import annotations

import os
import posixpath
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import unquote, urlsplit

from nbops.deps import require
from nbops.pipeline._remote import RemoteError, ResumableRemote

#: SFTP channels (one SSH connection) that move objects at once
CHANNELS = 4


class SFTPRemote(ResumableRemote):
    """``ssh://[user@]host[:port]/path`` (or ``sftp://``) through paramiko.

    Host, user, port and key come from the URL and the OpenSSH client config
    (``$NBOPS_SSH_CONFIG``, default ``~/.ssh/config``: ``User``, ``Port``, ``IdentityFile``,
    ``UserKnownHostsFile``, ``StrictHostKeyChecking``), then the ssh agent and default keys.
    Unknown host keys are refused unless the config says ``StrictHostKeyChecking no``.

    Transfers run on up to :data:`CHANNELS` SFTP channels of one SSH connection at once, each
    channel used by one thread at a time.
    """

    concurrency = CHANNELS

    def __init__(self, url: str) -> None:
        paramiko = require("paramiko", feature="ssh remotes")
        parts = urlsplit(url)
        if not parts.hostname:
            raise RemoteError(f"{url}: write ssh://[user@]host[:port]/path/to/remote")
        self.url = url
        self.base = unquote(parts.path) or "."
        config = paramiko.SSHConfig()
        config_file = Path(os.environ.get("NBOPS_SSH_CONFIG", "~/.ssh/config")).expanduser()
        if config_file.is_file():
            config = paramiko.SSHConfig.from_path(str(config_file))
        host = config.lookup(parts.hostname)
        client = paramiko.SSHClient()
        client.load_system_host_keys()
        for known in host.get("userknownhostsfile", "").split():
            known_path = Path(known).expanduser()
            if known_path.is_file():
                client.load_host_keys(str(known_path))
        strict = host.get("stricthostkeychecking", "yes").lower()
        policy: Any = (
            paramiko.AutoAddPolicy() if strict in ("no", "accept-new") else paramiko.RejectPolicy()
        )
        client.set_missing_host_key_policy(policy)
        try:
            client.connect(
                host.get("hostname", parts.hostname),
                port=parts.port or int(host.get("port", 22)),
                username=parts.username or host.get("user"),
                key_filename=[str(Path(k).expanduser()) for k in host.get("identityfile", [])]
                or None,
                timeout=30,
                banner_timeout=30,
                auth_timeout=30,
            )
            self._sftp = client.open_sftp()
        except (paramiko.SSHException, OSError) as exc:
            client.close()
            raise RemoteError(f"cannot connect to {url}: {exc}") from None
        self._client = client
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._idle.put(self._sftp)
        self._opened = [self._sftp]
        self._guard = threading.Lock()

    def _take(self) -> Any:
        """An SFTP channel no other thread is using (a new one while fewer than
        ``concurrency`` are open, else the next one given back); :meth:`_give` returns it."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._guard:
            if len(self._opened) < self.concurrency:
                try:
                    sftp = self._client.open_sftp()
                except Exception as exc:  # noqa: BLE001 (paramiko raises several kinds)
                    raise RemoteError(f"cannot open a channel to {self.url}: {exc}") from None
                self._opened.append(sftp)
                return sftp
        return self._idle.get()

    def _give(self, sftp: Any) -> None:
        self._idle.put(sftp)

    @contextmanager
    def _channel(self) -> Iterator[Any]:
        sftp = self._take()
        try:
            yield sftp
        finally:
            self._give(sftp)

    def _path(self, name: str) -> str:
        if name.startswith("/") or ".." in name.split("/"):
            raise RemoteError(f"refusing remote name {name!r}: it would escape {self.url}")
        return posixpath.join(self.base, name)

    def list(self, folder: str) -> Iterator[str]:
        import stat

        stack = [folder]
        while stack:
            current = stack.pop()
            try:
                with self._channel() as sftp:
                    entries = sftp.listdir_attr(self._path(current))
            except FileNotFoundError:
                continue
            for entry in entries:
                rel = f"{current}/{entry.filename}"
                if entry.st_mode is not None and stat.S_ISDIR(entry.st_mode):
                    stack.append(rel)
                elif not entry.filename.startswith("."):
                    yield rel

    def exists(self, name: str) -> bool:
        return self._exists(self._path(name))

    def _exists(self, path: str) -> bool:
        try:
            with self._channel() as sftp:
                sftp.stat(path)
        except FileNotFoundError:
            return False
        return True

    def open_read(self, name: str, offset: int = 0) -> IO[bytes]:
        return cast("IO[bytes]", _ChannelFile(self, self._path(name), name, offset))

    def size(self, name: str) -> int:
        with self._channel() as sftp:
            return int(sftp.stat(self._path(name)).st_size or 0)

    def _makedirs(self, folder: str) -> None:
        missing = []
        while folder not in ("", "/", "."):
            if self._exists(folder):
                break
            missing.append(folder)
            folder = posixpath.dirname(folder)
        for path in reversed(missing):
            try:
                with self._channel() as sftp:
                    sftp.mkdir(path)
            except OSError:
                if not self._exists(path):
                    raise

    def _sizes(self, folder: str, prefix: str) -> dict[str, int]:
        try:
            with self._channel() as sftp:
                entries = sftp.listdir_attr(folder)
        except FileNotFoundError:
            return {}
        return {
            posixpath.join(folder, e.filename): int(e.st_size or 0)
            for e in entries
            if e.filename.startswith(prefix)
        }

    def _partials(self, folder: str) -> dict[str, int]:
        import stat

        found: dict[str, int] = {}
        stack = [folder]
        while stack:
            current = stack.pop()
            try:
                with self._channel() as sftp:
                    entries = sftp.listdir_attr(current)
            except FileNotFoundError:
                continue
            for entry in entries:
                path = posixpath.join(current, entry.filename)
                if entry.st_mode is not None and stat.S_ISDIR(entry.st_mode):
                    stack.append(path)
                elif entry.filename.startswith(".") and entry.filename.endswith(".part"):
                    found[path] = int(entry.st_size or 0)
        return found

    def _open(self, path: str, mode: str) -> IO[bytes]:
        return cast("IO[bytes]", _ChannelFile(self, path, path, 0, mode))

    def _rename(self, source: str, target: str) -> None:
        with self._channel() as sftp:
            sftp.posix_rename(source, target)

    def _remove(self, path: str) -> None:
        try:
            with self._channel() as sftp:
                sftp.remove(path)
        except FileNotFoundError:
            pass

    def delete(self, name: str) -> None:
        self._remove(self._path(name))

    def close(self) -> None:
        for sftp in self._opened:
            sftp.close()
        self._client.close()


class _ChannelFile:
    """A remote file holding one channel of its :class:`SFTPRemote` until it is closed."""

    def __init__(
        self, remote: SFTPRemote, path: str, name: str, offset: int, mode: str = "rb"
    ) -> None:
        self._remote = remote
        self._sftp: Any = remote._take()
        try:
            self._fh = self._sftp.open(path, mode)
        except FileNotFoundError:
            remote._give(self._sftp)
            raise RemoteError(f"{name} is not in the remote {remote.url}") from None
        except BaseException:
            remote._give(self._sftp)
            raise
        if "r" in mode:
            self._fh.seek(offset)
            self._fh.prefetch()  # pipelined reads from the offset on
        else:
            self._fh.set_pipelined(True)

    def read(self, size: int = -1, /) -> bytes:
        return cast("bytes", self._fh.read(size))

    def write(self, data: bytes) -> int:
        self._fh.write(data)
        return len(data)

    def close(self) -> None:
        if self._sftp is not None:
            try:
                self._fh.close()
            finally:
                sftp, self._sftp = self._sftp, None
                self._remote._give(sftp)

    def __enter__(self) -> _ChannelFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
