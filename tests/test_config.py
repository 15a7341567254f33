"""The TOML config: defaults, validation messages, rendering, and the file locations."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import pytest

from monitor.config import (
    APP_NAME,
    MAX_SOCKET_PATH_BYTES,
    Config,
    ConfigError,
    QuietHours,
    control_socket_path,
    example_config,
    load_config,
    parse_config,
    render_config,
    resolve_paths,
    with_overrides,
)

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

FULL = """\
[watch]
pythons = ["{python}", "~/venvs/tf/bin/python"]
driver_poll_seconds = 10
debounce_quiet_seconds = 2.5
debounce_max_wait_seconds = 30
full_check_hours = 0

[load_test]
on_stack_change = false
every_hours = 24
timeout_seconds = 300

[metrics]
port = 9464
address = "0.0.0.0"
textfile = "{textfile}"

[notifications]
enabled = false
quiet_hours = "22:00-07:00"
min_interval_minutes = 0

[tray]
enabled = false

[history]
keep_days = 30
max_rows = 500

[nvml]
library = "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"

[log]
level = "DEBUG"
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def full_config(tmp_path) -> Path:
    text = FULL.format(python=sys.executable, textfile=tmp_path / "tfsm.prom")
    return write(tmp_path / "config.toml", text)


def test_a_missing_default_file_means_the_defaults(tmp_path):
    config = load_config(tmp_path / "config.toml")

    assert config == Config()
    assert config.source == ""
    assert config.watch.pythons == ()
    assert config.watch.driver_poll_seconds == 30
    assert (config.watch.debounce_quiet_seconds, config.watch.debounce_max_wait_seconds) == (5, 60)
    assert config.watch.full_check_hours == 6
    assert config.load_test.on_stack_change is True
    assert config.load_test.timeout_seconds == 120
    assert config.metrics.port is None
    assert config.metrics.address == "127.0.0.1"
    assert config.metrics.textfile is None
    assert config.tray.enabled == "auto"
    assert (config.history.keep_days, config.history.max_rows) == (90, 10000)
    assert config.log.level == "info"


def test_a_file_the_user_named_must_exist(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.toml: no such file"):
        load_config(tmp_path / "missing.toml", required=True)


def test_every_key_of_a_full_file(full_config, tmp_path, monkeypatch):
    config = load_config(full_config)

    home = os.environ["HOME"]
    assert config.source == str(full_config)
    assert config.watch.pythons == (sys.executable, f"{home}/venvs/tf/bin/python")
    assert config.watch.driver_poll_seconds == 10
    assert config.watch.debounce_quiet_seconds == 2.5
    assert config.watch.debounce_max_wait_seconds == 30
    assert config.watch.full_check_hours == 0
    assert config.load_test.on_stack_change is False
    assert config.load_test.every_hours == 24
    assert config.load_test.timeout_seconds == 300
    assert config.metrics.port == 9464
    assert config.metrics.address == "0.0.0.0"
    assert config.metrics.textfile == str(tmp_path / "tfsm.prom")
    assert config.notifications.enabled is False
    assert config.notifications.quiet_hours == QuietHours(dt.time(22), dt.time(7))
    assert config.notifications.min_interval_minutes == 0
    assert config.tray.enabled is False
    assert (config.history.keep_days, config.history.max_rows) == (30, 500)
    assert config.nvml.library == "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"
    assert config.log.level == "debug"
    # Named files that are missing are reported, not fatal; so is a metrics port open to all.
    assert any("venvs/tf/bin/python does not exist" in w for w in config.warnings)
    assert any("served to other machines" in w for w in config.warnings)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[watch]\ndebounce_quiet_seconds = "fast"',
            '[watch] debounce_quiet_seconds must be a number >= 0, got "fast"',
        ),
        (
            "[watch]\ndriver_poll_seconds = -30",
            "[watch] driver_poll_seconds must be a number >= 1, got -30",
        ),
        (
            "[watch]\nfull_check_hours = true",
            "[watch] full_check_hours must be a number >= 0, got true",
        ),
        (
            "[watch]\nfull_check_hours = nan",
            "[watch] full_check_hours must be a number >= 0, got nan",
        ),
        (
            '[watch]\npythons = "/usr/bin/python3"',
            '[watch] pythons must be a list of absolute paths, e.g. ["~/venvs/tf/bin/python"], '
            'got "/usr/bin/python3"',
        ),
        (
            '[watch]\npythons = ["venv/bin/python"]',
            '[watch] pythons must be a list of absolute paths, e.g. ["~/venvs/tf/bin/python"], '
            'got ["venv/bin/python"]',
        ),
        (
            "[watch]\ndebounce_quiet_seconds = 90",
            "[watch] debounce_max_wait_seconds must be >= debounce_quiet_seconds (90), got 60",
        ),
        (
            "[load_test]\ntimeout_seconds = 0",
            "[load_test] timeout_seconds must be a number > 0, got 0",
        ),
        (
            '[load_test]\non_stack_change = "yes"',
            '[load_test] on_stack_change must be true or false, got "yes"',
        ),
        (
            "[metrics]\nport = 70000",
            "[metrics] port must be a whole number from 1 to 65535, got 70000",
        ),
        (
            "[metrics]\nport = 9464.5",
            "[metrics] port must be a whole number from 1 to 65535, got 9464.5",
        ),
        (
            '[metrics]\naddress = "local host"',
            '[metrics] address must be an IP address or host name, e.g. "127.0.0.1", '
            'got "local host"',
        ),
        (
            '[metrics]\ntextfile = "/var/lib/node_exporter/tfsm.txt"',
            "[metrics] textfile must be an absolute path ending in .prom (~ allowed), "
            'got "/var/lib/node_exporter/tfsm.txt"',
        ),
        (
            '[notifications]\nquiet_hours = "10pm-7am"',
            '[notifications] quiet_hours must be a span "HH:MM-HH:MM" such as "22:00-07:00", '
            'or "" for none, got "10pm-7am"',
        ),
        (
            '[notifications]\nquiet_hours = "22:00-25:00"',
            '[notifications] quiet_hours must be a span "HH:MM-HH:MM" such as "22:00-07:00", '
            'or "" for none (times 00:00 to 23:59, start and end different), got "22:00-25:00"',
        ),
        (
            '[tray]\nenabled = "sometimes"',
            '[tray] enabled must be true, false or "auto", got "sometimes"',
        ),
        (
            "[history]\nkeep_days = 0",
            "[history] keep_days must be a whole number >= 1, got 0",
        ),
        (
            '[log]\nlevel = "loud"',
            '[log] level must be one of "debug", "info", "warning", "error", got "loud"',
        ),
        (
            "[watch]\ndebounce_seconds = 5",
            '[watch] unknown key "debounce_seconds"; did you mean "debounce_quiet_seconds"?',
        ),
        ("[metric]\nport = 9464", "unknown section [metric]; did you mean [metrics]?"),
        ("port = 9464", '"port" must be inside a section; known: [watch], [load_test]'),
        ("watch = 5", "watch must be a table ([watch]), got 5"),
        (
            "[watch]\nstarted = 2026-01-01",
            '[watch] unknown key "started"; known: "pythons", "driver_poll_seconds"',
        ),
    ],
)
def test_each_mistake_is_named_with_file_key_and_what_was_expected(tmp_path, toml, message):
    path = write(tmp_path / "config.toml", toml)

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert str(caught.value).startswith(f"{path}: {message}")


def test_every_mistake_is_reported_at_once(tmp_path):
    path = write(tmp_path / "config.toml", "[watch]\ndriver_poll_seconds = 0\n[log]\nlevel = 3\n")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert caught.value.problems == [
        "[watch] driver_poll_seconds must be a number >= 1, got 0",
        '[log] level must be one of "debug", "info", "warning", "error", got 3',
    ]
    assert str(caught.value).splitlines()[1] == f"{path}: {caught.value.problems[1]}"


def test_toml_syntax_errors_say_where(tmp_path):
    path = write(tmp_path / "config.toml", "[watch]\n\ndriver_poll_seconds = = 30\n")

    with pytest.raises(ConfigError, match=r"config\.toml: not valid TOML: .*line 3, column 23"):
        load_config(path)


def test_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes(b'[log]\nlevel = "d\xe9bug"\n')

    with pytest.raises(ConfigError, match=r"not UTF-8 text \(invalid continuation byte at byte"):
        load_config(path)


def test_a_directory_in_place_of_the_file(tmp_path):
    (tmp_path / "config.toml").mkdir()

    with pytest.raises(ConfigError, match=r"config\.toml: cannot read it: Is a directory"):
        load_config(tmp_path / "config.toml")


def test_an_empty_string_turns_an_optional_value_off():
    config = parse_config({"metrics": {"port": 0, "textfile": ""}, "nvml": {"library": ""}})

    assert config.metrics.port is None
    assert config.metrics.textfile is None
    assert config.nvml.library is None


def test_the_rendered_config_parses_back_to_the_same_config(full_config):
    config = load_config(full_config)
    paths = resolve_paths(str(full_config))

    text = render_config(config, paths)

    assert parse_config(tomllib.loads(text)) == config
    assert f"# config file:    {full_config} (exists; --config)" in text
    assert f"# values from:    {full_config}; keys it does not set take the defaults" in text
    assert f"# control socket: {paths.control_socket}" in text
    assert "# warning: [watch] pythons:" in text


def test_the_rendered_defaults_parse_back_and_show_the_unset_keys_commented():
    paths = resolve_paths()

    text = render_config(Config(), paths)

    assert parse_config(tomllib.loads(text)) == Config()
    assert "# values from:    built-in defaults (no config file)" in text
    assert "(does not exist; default location)" in text
    assert "\n# port = 9464\n" in text


def test_odd_strings_survive_rendering():
    odd = 'C:\\Users\\ada "tf"\x7f\n/tfsm.prom'
    config = with_overrides(Config(), {"metrics.textfile": "/" + odd})

    text = render_config(config, resolve_paths())

    assert parse_config(tomllib.loads(text)).metrics.textfile == "/" + odd


def test_the_example_file_is_the_documented_defaults():
    text = example_config(resolve_paths())

    assert parse_config(tomllib.loads(text)) == Config()
    assert "# Serve /metrics on this port; unset or 0: off." in text
    assert f"# Save it as {resolve_paths().config_file}\n" in text
    assert all(len(line) <= 100 for line in example_config().splitlines())


def test_command_line_overrides_are_validated_like_the_file():
    config = with_overrides(Config(), {"metrics.port": 9464, "log.level": "debug"})

    assert config.metrics.port == 9464
    assert config.log.level == "debug"
    assert config.overrides == ("metrics.port", "log.level")
    assert "# command line:   metrics.port, log.level" in render_config(config, resolve_paths())
    with pytest.raises(ConfigError, match=r"^command line: \[metrics\] port must be a whole"):
        with_overrides(Config(), {"metrics.port": -1})


def test_quiet_hours_wrap_midnight():
    night = QuietHours(dt.time(22), dt.time(7))
    lunch = QuietHours(dt.time(12), dt.time(13, 30))

    assert (
        night.contains(dt.time(23, 59))
        and night.contains(dt.time(0))
        and night.contains(dt.time(6, 59))
    )
    assert not night.contains(dt.time(7)) and not night.contains(dt.time(21, 59))
    assert lunch.contains(dt.time(13, 29)) and not lunch.contains(dt.time(13, 30))
    assert str(night) == "22:00-07:00"


@pytest.mark.skipif(sys.platform != "linux", reason="XDG layout")
def test_paths_come_from_platformdirs_under_the_private_home(_private_home, monkeypatch):
    monkeypatch.delenv("TFSM_CONFIG", raising=False)

    paths = resolve_paths()

    assert paths.config_file == _private_home / ".config" / APP_NAME / "config.toml"
    assert paths.config_origin == "default" and not paths.config_explicit
    assert paths.state_dir == _private_home / ".local/state" / APP_NAME
    assert paths.history_db.parent == paths.state_dir
    assert paths.lock_file.parent == paths.state_dir
    assert paths.log_file.name == f"{APP_NAME}.log"


def test_the_config_file_comes_from_the_flag_then_the_environment(tmp_path):
    env = {"TFSM_CONFIG": str(tmp_path / "env.toml")}

    from_env = resolve_paths(None, env)
    from_flag = resolve_paths(str(tmp_path / "flag.toml"), env)

    assert (from_env.config_file, from_env.config_origin) == (tmp_path / "env.toml", "TFSM_CONFIG")
    assert (from_flag.config_file, from_flag.config_origin) == (tmp_path / "flag.toml", "--config")
    assert from_env.config_explicit and from_flag.config_explicit


@pytest.mark.skipif(sys.platform != "linux", reason="XDG runtime dir")
def test_the_socket_lives_in_the_runtime_dir_when_there_is_one(tmp_path):
    with_runtime = resolve_paths(None, {"XDG_RUNTIME_DIR": str(tmp_path)})
    without = resolve_paths(None, {"XDG_RUNTIME_DIR": str(tmp_path / "gone")})

    assert with_runtime.control_socket == tmp_path / APP_NAME / "control.sock"
    assert without.control_socket == without.state_dir / "control.sock"


def test_a_socket_path_too_long_for_af_unix_falls_back_to_a_short_one(tmp_path):
    deep = tmp_path / ("d" * 120)

    path = control_socket_path(None, deep)

    assert len(os.fsencode(path)) <= MAX_SOCKET_PATH_BYTES
    assert path.name == "control.sock"
    assert APP_NAME in path.parent.name
