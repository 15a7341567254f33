"""The control channel between the CLI and the running monitor: status, check-now, pause...

A Unix socket (POSIX) or a named pipe (Windows) through multiprocessing.connection, which
speaks both. Only the user can connect: the socket lives in a 0700 directory and every
connection must prove it knows a random key kept in a 0600 file of the user's state dir.
Messages are JSON objects both ways ({"command": "status"} -> {"ok": true, ...}).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import sys
import threading
from collections.abc import Callable, Mapping
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

log = logging.getLogger("monitor.control")

Handler = Callable[[Mapping[str, Any]], Mapping[str, Any]]
_WAKE = "__wake__"


class ControlError(Exception):
    """The running monitor could not be reached or did not answer; the text says why."""


def address_for(socket_path: Path) -> tuple[str, str]:
    """(address, family): the socket path on POSIX, a per-user named pipe on Windows."""
    if sys.platform == "win32":
        user = os.environ.get("USERNAME", "user")
        return rf"\\.\pipe\tf-stack-monitor-{user}", "AF_PIPE"
    return str(socket_path), "AF_UNIX"


def load_key(key_file: Path, create: bool) -> bytes | None:
    """The shared secret; `create` makes it (0600) when missing. None if absent/unreadable."""
    try:
        return key_file.read_bytes()
    except FileNotFoundError:
        if not create:
            return None
    except OSError:
        return None
    key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


class ControlServer:
    """Answers requests with `handler` on one accept thread, until `stop()`."""

    def __init__(self, socket_path: Path, key: bytes, handler: Handler) -> None:
        self.address, self.family = address_for(socket_path)
        self._key = key
        self._handler = handler
        self._listener: Listener | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        if self.family == "AF_UNIX":
            socket_dir = Path(self.address).parent
            socket_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(socket_dir, 0o700)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)  # left by a monitor that was killed; we hold the lock
        self._listener = Listener(self.address, self.family, authkey=self._key)
        if self.family == "AF_UNIX":
            os.chmod(self.address, 0o600)
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._listener is None:
            return
        self._stopping.set()
        if self._thread is not None and self._thread.is_alive():
            # accept() cannot be interrupted portably: a last connection wakes it up.
            with contextlib.suppress(OSError, EOFError, ControlError):
                request(Path(self.address), self._key, {"command": _WAKE}, timeout=2.0)
            self._thread.join(timeout=5.0)
        self._listener.close()
        self._listener = None

    def _serve(self) -> None:
        assert self._listener is not None
        while True:
            try:
                conn = self._listener.accept()
            except Exception as exc:  # a failed handshake (AuthenticationError), or closed
                if self._stopping.is_set():
                    return
                log.warning("control connection refused: %s", exc)
                continue
            with conn:
                if self._stopping.is_set():  # the wake-up connection, or one arriving too late
                    return
                self._answer(conn)

    def _answer(self, conn: Connection) -> None:
        try:
            if not conn.poll(5.0):
                return
            message = json.loads(conn.recv_bytes(1 << 20))
            if not isinstance(message, dict):
                raise ValueError("a request must be a JSON object")
            reply = dict(self._handler(message))
        except (OSError, EOFError) as exc:
            log.warning("control request failed: %s", exc)
            return
        except Exception as exc:  # a bad request or a bug: answer, never die
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        with contextlib.suppress(OSError):
            conn.send_bytes(json.dumps(reply).encode())


def request(
    socket_path: Path, key: bytes | None, message: Mapping[str, Any], timeout: float = 10.0
) -> dict[str, Any]:
    """Send one request to the running monitor and return its answer."""
    address, family = address_for(socket_path)
    if key is None:
        raise ControlError("no monitor is running (it has never been started by this user)")
    try:
        conn = Client(address, family, authkey=key)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise ControlError("no monitor is running (start one with `tf-stack-monitor run`)") from exc
    except OSError as exc:
        raise ControlError(f"cannot reach the monitor at {address}: {exc}") from exc
    except Exception as exc:  # AuthenticationError: a key from another start
        raise ControlError(f"the monitor at {address} refused the connection: {exc}") from exc
    with conn:
        try:
            conn.send_bytes(json.dumps(dict(message)).encode())
            if not conn.poll(timeout):
                raise ControlError(f"the monitor did not answer within {timeout:g} s")
            reply = json.loads(conn.recv_bytes(1 << 22))
        except (OSError, EOFError, ValueError) as exc:
            raise ControlError(f"the monitor's answer was cut off: {exc}") from exc
    if not isinstance(reply, dict):
        raise ControlError("the monitor's answer was not understood")
    return reply
