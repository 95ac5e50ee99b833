"""``ssh://`` and ``sftp://`` remotes through paramiko (the ``remote`` extra)."""

from __future__ import annotations

import os
import posixpath
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import unquote, urlsplit

from nbops.deps import require
from nbops.pipeline._remote import Progress, Readable, Remote, RemoteError, copy_stream


class SFTPRemote(Remote):
    """``ssh://[user@]host[:port]/path`` (or ``sftp://``) through paramiko.

    Host, user, port and key come from the URL and the OpenSSH client config
    (``$NBOPS_SSH_CONFIG``, default ``~/.ssh/config``: ``User``, ``Port``, ``IdentityFile``,
    ``UserKnownHostsFile``, ``StrictHostKeyChecking``), then the ssh agent and default keys.
    Unknown host keys are refused unless the config says ``StrictHostKeyChecking no``.
    """

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
                entries = self._sftp.listdir_attr(self._path(current))
            except FileNotFoundError:
                continue
            for entry in entries:
                rel = f"{current}/{entry.filename}"
                if entry.st_mode is not None and stat.S_ISDIR(entry.st_mode):
                    stack.append(rel)
                elif not entry.filename.startswith("."):
                    yield rel

    def exists(self, name: str) -> bool:
        try:
            self._sftp.stat(self._path(name))
        except FileNotFoundError:
            return False
        return True

    def open_read(self, name: str, offset: int = 0) -> IO[bytes]:
        try:
            handle = self._sftp.open(self._path(name), "rb")
        except FileNotFoundError:
            raise RemoteError(f"{name} is not in the remote {self.url}") from None
        handle.seek(offset)
        handle.prefetch()  # pipelined reads from the offset on
        return cast("IO[bytes]", handle)

    def size(self, name: str) -> int:
        return int(self._sftp.stat(self._path(name)).st_size or 0)

    def _makedirs(self, folder: str) -> None:
        missing = []
        while folder not in ("", "/", "."):
            try:
                self._sftp.stat(folder)
                break
            except FileNotFoundError:
                missing.append(folder)
                folder = posixpath.dirname(folder)
        for path in reversed(missing):
            try:
                self._sftp.mkdir(path)
            except OSError:
                if not self.exists_abs(path):
                    raise

    def exists_abs(self, path: str) -> bool:
        try:
            self._sftp.stat(path)
        except FileNotFoundError:
            return False
        return True

    def write(self, name: str, source: Readable, progress: Progress | None, total: int) -> None:
        target = self._path(name)
        self._makedirs(posixpath.dirname(target))
        tmp = f"{posixpath.dirname(target)}/.{posixpath.basename(target)}.{uuid.uuid4().hex}.part"
        try:
            with self._sftp.open(tmp, "wb") as fh:
                fh.set_pipelined(True)
                copy_stream(source, fh, progress, total)
            self._sftp.posix_rename(tmp, target)
        except BaseException:
            try:
                self._sftp.remove(tmp)
            except OSError:
                pass
            raise

    def delete(self, name: str) -> None:
        try:
            self._sftp.remove(self._path(name))
        except FileNotFoundError:
            pass

    def close(self) -> None:
        self._sftp.close()
        self._client.close()
