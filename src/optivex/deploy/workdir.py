"""The work directory of `optivex up`: its lock, and one log directory per run.

One `optivex up` per work directory: an exclusive flock(2) on `<dir>/up.lock`. The kernel releases
the lock when its holder's last descriptor closes, so whatever ends the holder (Ctrl-C, a crash,
`kill -9`) frees the directory: no stale lock to clean up. The file is never deleted (deleting it
would let two processes lock two different files of the same name); its content, the holder's pid
and start time, is only for the message of the one refused.

Each run logs into a directory of its own, `<dir>/logs/<UTC start time>/`, and `<dir>/logs/latest`
points to the newest: the lines shown when a component dies are of this run only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from optivex.deploy.errors import DeploymentError

LOCK_FILE = "up.lock"
LATEST_LINK = "latest"


class DirectoryBusy(DeploymentError):
    """Another process holds the directory's lock; the message names it."""

    def __init__(self, directory: Path, holder: str) -> None:
        self.directory = directory
        self.holder = holder
        who = f"another optivex up ({holder})" if holder else "another optivex up"
        super().__init__(f"{directory} is in use by {who}; stop it first, or give another --dir")


class DirectoryLock:
    """The held lock of a work directory (`acquire`); `release()` or leave the `with` block to free it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, directory: Path) -> DirectoryLock:
        """Lock `directory` (created if missing) at once, or raise DirectoryBusy without waiting.

        Nothing else in the directory is touched, and a refused caller does not write the lock file.
        """
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / LOCK_FILE
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise DeploymentError(f"cannot lock {directory}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DirectoryBusy(directory, holder) from None
        except OSError as exc:
            os.close(fd)
            raise DeploymentError(f"cannot lock {path}: {exc.strerror or exc}") from exc
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {stamp}\n".encode(), 0)
        return cls(path, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Unlock (closing the descriptor); idempotent."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DirectoryLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    """What the holder wrote in the lock file (one line), or "" if it cannot be read."""
    try:
        data = os.pread(fd, 200, 0)
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace").strip().splitlines()[0] if data.strip() else ""


def new_run_directory(logs: Path, now: float | None = None) -> Path:
    """Create `logs/<YYYYmmdd-HHMMSS>/` (UTC; `-2`, `-3`... when taken) and point `logs/latest` at it.

    The link is replaced atomically (a fresh link renamed over it); where it cannot be made (a
    filesystem without symlinks, a `latest` that is a directory) the run goes on without it.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    try:
        logs.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            run = logs / (stamp if n == 1 else f"{stamp}-{n}")
            try:
                run.mkdir()
                break
            except FileExistsError:
                continue
        else:
            raise DeploymentError(
                f"cannot make a run directory in {logs}: {stamp} and its suffixes are taken"
            )
    except OSError as exc:
        raise DeploymentError(f"cannot make a run directory in {logs}: {exc.strerror or exc}") from exc
    fresh = logs / f".{LATEST_LINK}.{os.getpid()}"
    try:
        with contextlib.suppress(FileNotFoundError):
            fresh.unlink()
        fresh.symlink_to(run.name)
        os.replace(fresh, logs / LATEST_LINK)
    except OSError:
        with contextlib.suppress(OSError):
            fresh.unlink()
    return run
