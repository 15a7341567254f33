"""Log setup: the rotating file, verbosity, idempotence, and the stderr fallback."""

from __future__ import annotations

import logging
import re
import sys

import pytest

from monitor import logs
from monitor.config import APP_NAME

TIMESTAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ")


@pytest.fixture(autouse=True)
def _restore_root_logger():
    root = logging.getLogger()
    level = root.level
    yield
    logs.remove_handlers()
    root.setLevel(level)


def ours() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if getattr(h, "_tfsm_handler", False)]


def test_logs_go_to_a_timestamped_file(tmp_path):
    log_file = logs.setup_logging(tmp_path / "log")

    logging.getLogger("monitor.daemon").info("driver changed: 535.104 -> 550.54")
    logging.getLogger("monitor.daemon").debug("debounce armed")

    assert log_file == tmp_path / "log" / f"{APP_NAME}.log"
    (line,) = log_file.read_text(encoding="utf-8").splitlines()
    assert TIMESTAMPED.match(line)
    assert line.endswith(" INFO    monitor.daemon [MainThread] driver changed: 535.104 -> 550.54")


def test_verbose_logs_debug_messages_too(tmp_path):
    log_file = logs.setup_logging(tmp_path, verbose=True, level="warning")

    logging.getLogger("monitor.watch").debug("inotify event on /usr/local")

    assert "DEBUG   monitor.watch [MainThread] inotify event" in log_file.read_text()


def test_the_configured_level_filters(tmp_path):
    log_file = logs.setup_logging(tmp_path, level="warning")

    logging.getLogger("monitor").info("routine")
    logging.getLogger("monitor").warning("history database locked")

    assert log_file.read_text().count("\n") == 1
    assert "history database locked" in log_file.read_text()


def test_setting_up_twice_does_not_log_twice(tmp_path, capsys):
    logs.setup_logging(tmp_path, to_stderr=True)
    log_file = logs.setup_logging(tmp_path, to_stderr=True)

    logging.getLogger("monitor").warning("once")

    assert len(ours()) == 2  # the file and stderr
    assert log_file.read_text().count("once") == 1
    assert capsys.readouterr().err.count("once") == 1


def test_stderr_only(capsys):
    assert logs.setup_logging(None, to_stderr=True) is None

    logging.getLogger("monitor").error("check failed")

    assert re.search(r"^\S+ \S+ ERROR   monitor: check failed$", capsys.readouterr().err, re.M)


def test_an_unusable_log_dir_falls_back_to_stderr_with_a_warning(tmp_path, capsys):
    in_the_way = tmp_path / "log"
    in_the_way.write_text("not a directory")

    assert logs.setup_logging(in_the_way) is None
    logging.getLogger("monitor").info("still heard")

    err = capsys.readouterr().err
    assert f"cannot write the log file {in_the_way}/{APP_NAME}.log: {in_the_way} is not a " in err
    assert "logging to stderr instead" in err
    assert "still heard" in err


def test_a_directory_in_place_of_the_log_file(tmp_path, capsys):
    (tmp_path / f"{APP_NAME}.log").mkdir()

    assert logs.setup_logging(tmp_path) is None

    assert "Is a directory; logging to stderr instead" in capsys.readouterr().err


def test_the_file_rotates_and_stays_bounded(tmp_path):
    log_file = logs.setup_logging(tmp_path)
    chatty = logging.getLogger("monitor.chatty")

    for i in range(1500):
        chatty.info("%04d %s", i, "x" * 1000)

    assert log_file.stat().st_size <= logs.MAX_BYTES
    assert (tmp_path / f"{APP_NAME}.log.1").is_file()
    assert "1499 " in log_file.read_text()


@pytest.mark.skipif(sys.platform != "linux", reason="XDG layout")
def test_log_dir_is_the_platformdirs_one(_private_home):
    assert logs.log_dir() == _private_home / ".local/state" / APP_NAME / "log"
