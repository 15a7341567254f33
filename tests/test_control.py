"""The control channel: a real Unix socket, a real key file, the real server and client."""

from __future__ import annotations

import os
import stat

import pytest

from monitor import control


def _serve(tmp_path, handler):
    key = control.load_key(tmp_path / "state" / "control.key", create=True)
    server = control.ControlServer(tmp_path / "run" / "control.sock", key, handler)
    server.start()
    return server, key


def test_a_request_gets_the_handlers_answer(tmp_path):
    seen = []
    server, key = _serve(tmp_path, lambda m: seen.append(m) or {"ok": True, "state": "healthy"})
    try:
        reply = control.request(tmp_path / "run" / "control.sock", key, {"command": "status"})
    finally:
        server.stop()
    assert reply == {"ok": True, "state": "healthy"}
    assert seen == [{"command": "status"}]


def test_only_the_user_can_reach_it(tmp_path):
    server, _ = _serve(tmp_path, lambda m: {"ok": True})
    try:
        sock = tmp_path / "run" / "control.sock"
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(tmp_path / "state" / "control.key").st_mode) == 0o600
        with pytest.raises(control.ControlError, match="refused"):
            control.request(sock, b"not the key", {"command": "status"})
        # the server survives a client with the wrong key
        assert control.request(
            sock, control.load_key(tmp_path / "state" / "control.key", False), {"command": "status"}
        ) == {"ok": True}
    finally:
        server.stop()


def test_a_handler_that_raises_answers_with_the_error(tmp_path):
    def broken(message):
        raise KeyError("gpu_test")

    server, key = _serve(tmp_path, broken)
    try:
        reply = control.request(tmp_path / "run" / "control.sock", key, {"command": "x"})
    finally:
        server.stop()
    assert reply == {"ok": False, "error": "KeyError: 'gpu_test'"}


def test_no_monitor_running(tmp_path):
    with pytest.raises(control.ControlError, match="no monitor is running"):
        control.request(tmp_path / "nothing.sock", b"k" * 32, {"command": "status"})
    with pytest.raises(control.ControlError, match="never been started"):
        control.request(tmp_path / "nothing.sock", None, {"command": "status"})
    assert control.load_key(tmp_path / "absent.key", create=False) is None


def test_a_stale_socket_from_a_killed_monitor_is_replaced(tmp_path):
    sock = tmp_path / "run" / "control.sock"
    sock.parent.mkdir(mode=0o700)
    sock.write_text("left behind")
    server, key = _serve(tmp_path, lambda m: {"ok": True})
    try:
        assert control.request(sock, key, {"command": "status"}) == {"ok": True}
    finally:
        server.stop()
    assert not sock.exists()  # removed on the way out


def test_a_slow_handler_times_out_the_client(tmp_path):
    import threading

    release = threading.Event()
    server, key = _serve(tmp_path, lambda m: release.wait(5) and {"ok": True})
    try:
        with pytest.raises(control.ControlError, match=r"did not answer within 0\.3 s"):
            control.request(tmp_path / "run" / "control.sock", key, {"command": "x"}, timeout=0.3)
    finally:
        release.set()
        server.stop()
