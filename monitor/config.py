"""The TOML config file and the places the monitor keeps its files.

One table of options (the dataclass fields below, each with its doc, parser and example)
drives loading, validation, `tf-stack-monitor config` and the example file, so the four
cannot drift apart. Validation is pure (`parse_config`); reading the file and checking that
named files exist (warnings, not errors) are the only I/O.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import getpass
import ipaddress
import json
import math
import os
import re
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import platformdirs

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

APP_NAME = "tf-stack-monitor"
CONFIG_ENV = "TFSM_CONFIG"
CONFIG_FILE_NAME = "config.toml"
LOG_FILE_NAME = f"{APP_NAME}.log"
LOG_LEVELS = ("debug", "info", "warning", "error")
# sun_path is 108 bytes on Linux and 104 on macOS, the terminating NUL included.
MAX_SOCKET_PATH_BYTES = 103


class ConfigError(Exception):
    """The config file (or a command-line override) is unusable; `problems` says why, each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__("\n".join(f"{source}: {problem}" for problem in self.problems))


class _Expected(ValueError):
    """A parser's complaint: what the value should have been ("a number >= 0")."""


# --------------------------------------------------------------------------- value parsers


def _number(minimum: float, *, above: bool = False) -> Callable[[Any], float]:
    expected = f"a number {'>' if above else '>='} {minimum:g}"

    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Expected(expected)
        if not math.isfinite(value) or value < minimum or (above and value == minimum):
            raise _Expected(expected)
        return float(value)

    return parse


def _integer(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    expected = (
        f"a whole number from {minimum} to {maximum}"
        if maximum is not None
        else f"a whole number >= {minimum}"
    )

    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Expected(expected)
        if value < minimum or (maximum is not None and value > maximum):
            raise _Expected(expected)
        return value

    return parse


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Expected("true or false")
    return value


def _tray_mode(value: Any) -> bool | Literal["auto"]:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() == "auto":
        return "auto"
    raise _Expected('true, false or "auto"')


def _log_level(value: Any) -> str:
    if isinstance(value, str) and value.lower() in LOG_LEVELS:
        return value.lower()
    raise _Expected("one of " + ", ".join(f'"{level}"' for level in LOG_LEVELS))


def _path(value: Any, suffix: str = "") -> str:
    expected = f"an absolute path ending in {suffix}" if suffix else "an absolute path"
    if not isinstance(value, str) or not value.strip():
        raise _Expected(expected)
    path = os.path.expanduser(value)
    if not os.path.isabs(path) or not path.endswith(suffix):
        raise _Expected(expected + " (~ allowed)")
    return path


def _optional_path(suffix: str = "") -> Callable[[Any], str | None]:
    def parse(value: Any) -> str | None:
        if value == "":
            return None
        return _path(value, suffix)

    return parse


def _path_list(value: Any) -> tuple[str, ...]:
    expected = 'a list of absolute paths, e.g. ["~/venvs/tf/bin/python"]'
    if not isinstance(value, list):
        raise _Expected(expected)
    try:
        return tuple(_path(item) for item in value)
    except _Expected:
        raise _Expected(expected) from None


def _port(value: Any) -> int | None:
    if value == 0 and not isinstance(value, bool):
        return None
    return _integer(1, 65535)(value)


_HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")


def _address(value: Any) -> str:
    expected = 'an IP address or host name, e.g. "127.0.0.1"'
    if not isinstance(value, str):
        raise _Expected(expected)
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        if _HOST_NAME.match(value):
            return value
    raise _Expected(expected)


@dataclass(frozen=True)
class QuietHours:
    """A daily span without notifications; it may wrap midnight ("22:00-07:00")."""

    start: dt.time
    end: dt.time

    def contains(self, moment: dt.time) -> bool:
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


_QUIET_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _quiet_hours(value: Any) -> QuietHours | None:
    expected = 'a span "HH:MM-HH:MM" such as "22:00-07:00", or "" for none'
    if value == "":
        return None
    match = _QUIET_HOURS.match(value) if isinstance(value, str) else None
    if not match:
        raise _Expected(expected)
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    if max(h1, h2) > 23 or max(m1, m2) > 59 or (h1, m1) == (h2, m2):
        raise _Expected(expected + " (times 00:00 to 23:59, start and end different)")
    return QuietHours(dt.time(h1, m1), dt.time(h2, m2))


def _option(default: Any, doc: str, parse: Callable[[Any], Any], example: str = "") -> Any:
    """A config key: its default, the comment shown above it, its parser; example: for unset."""
    return field(default=default, metadata={"doc": doc, "parse": parse, "example": example})


# --------------------------------------------------------------------------- the config


@dataclass(frozen=True)
class WatchConfig:
    """What the daemon watches and how quickly it reacts."""

    pythons: tuple[str, ...] = _option(
        (),
        "Interpreters whose TensorFlow to watch. Empty: the python on PATH, plus the "
        "monitor's own if it has TensorFlow.",
        _path_list,
    )
    driver_poll_seconds: float = _option(
        30.0, "How often NVML is asked for the driver version and the GPUs.", _number(1)
    )
    debounce_quiet_seconds: float = _option(
        5.0,
        "After a change, wait until nothing else changed for this long (an install writes "
        "thousands of files).",
        _number(0),
    )
    debounce_max_wait_seconds: float = _option(
        60.0, "...but never wait longer than this after the first change.", _number(0)
    )
    full_check_hours: float = _option(
        6.0, "A full check even when nothing was seen to change; 0: never.", _number(0)
    )


@dataclass(frozen=True)
class LoadTestConfig:
    """When the GPU load test (TensorFlow really computing on the GPU) runs."""

    on_stack_change: bool = _option(
        True, "Run it after the driver, CUDA, cuDNN or a watched TensorFlow changed.", _boolean
    )
    every_hours: float = _option(
        0.0, "Also run it on this schedule; 0: never on a schedule.", _number(0)
    )
    timeout_seconds: float = _option(
        120.0, "Give up on one load test after this long.", _number(0, above=True)
    )


@dataclass(frozen=True)
class MetricsConfig:
    """The Prometheus exporter; off unless a port or a textfile is set."""

    port: int | None = _option(
        None, "Serve /metrics on this port; unset or 0: off.", _port, example="9464"
    )
    address: str = _option(
        "127.0.0.1",
        'Address to serve on; "0.0.0.0" lets other machines scrape it.',
        _address,
    )
    textfile: str | None = _option(
        None,
        "Also write the metrics to this file for node_exporter's textfile collector (must "
        "end in .prom); unset: off.",
        _optional_path(".prom"),
        example='"/var/lib/node_exporter/textfile/tf-stack-monitor.prom"',
    )


@dataclass(frozen=True)
class NotificationsConfig:
    """Desktop notifications when the stack breaks or gets fixed."""

    enabled: bool = _option(True, "Show desktop notifications.", _boolean)
    quiet_hours: QuietHours | None = _option(  # noqa: RUF009 (_option returns a field)
        None,
        'No notifications in this daily span, e.g. "22:00-07:00"; unset: none.',
        _quiet_hours,
        example='"22:00-07:00"',
    )
    min_interval_minutes: float = _option(
        1.0,
        "After a burst of three, at most one notification per this many minutes.",
        _number(0),
    )


@dataclass(frozen=True)
class TrayConfig:
    """The tray icon."""

    enabled: bool | Literal["auto"] = _option(
        "auto", 'true, false, or "auto" (only where a desktop session is found).', _tray_mode
    )


@dataclass(frozen=True)
class HistoryConfig:
    """How much check history is kept."""

    keep_days: int = _option(90, "Forget checks older than this many days.", _integer(1))
    max_rows: int = _option(10000, "Keep at most this many checks.", _integer(1))


@dataclass(frozen=True)
class NvmlConfig:
    """Where NVML (the driver's management library) is loaded from."""

    library: str | None = _option(
        None,
        "Load NVML from this file instead of the system's; unset: the system's.",
        _optional_path(),
        example='"/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"',
    )


@dataclass(frozen=True)
class LogConfig:
    """The daemon's log file (rotated, in the log directory)."""

    level: str = _option(
        "info", "debug, info, warning or error; --verbose means debug.", _log_level
    )


@dataclass(frozen=True)
class Config:
    """The whole config. source: the file the values came from ("" = built-in defaults).

    warnings: things worth a log line that do not stop the monitor (a watched interpreter
    that does not exist yet). overrides: "section.key" set on the command line.
    """

    watch: WatchConfig = field(default_factory=WatchConfig)
    load_test: LoadTestConfig = field(default_factory=LoadTestConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    tray: TrayConfig = field(default_factory=TrayConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    nvml: NvmlConfig = field(default_factory=NvmlConfig)
    log: LogConfig = field(default_factory=LogConfig)
    source: str = field(default="", compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)
    overrides: tuple[str, ...] = field(default=(), compare=False)


def _sections() -> Iterator[tuple[str, type]]:
    for f in dataclasses.fields(Config):
        if f.compare:
            yield f.name, f.default_factory  # type: ignore[misc]


SECTIONS: tuple[str, ...] = tuple(name for name, _ in _sections())


# --------------------------------------------------------------------------- parsing


def parse_config(data: Mapping[str, Any], source: str = "") -> Config:
    """Validate parsed TOML into a Config; every problem found is reported at once."""
    problems: list[str] = []
    sections: dict[str, Any] = {}
    for key, value in data.items():
        if key not in SECTIONS:
            hint = _did_you_mean(key, SECTIONS, "[{}]")
            if isinstance(value, dict):
                problems.append(f"unknown section [{key}]{hint}")
            else:
                problems.append(f'"{key}" must be inside a section{hint}')
        elif not isinstance(value, dict):
            problems.append(f"{key} must be a table ([{key}]), got {_show(value)}")
    for name, cls in _sections():
        table = data.get(name)
        sections[name] = _parse_section(
            name, cls, table if isinstance(table, dict) else {}, problems
        )
    if not problems:
        problems.extend(_cross_checks(sections))
    if problems:
        raise ConfigError(source or "config", problems)
    return Config(**sections, source=source)


def _parse_section(name: str, cls: type, table: Mapping[str, Any], problems: list[str]) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in table.items():
        option = known.get(key)
        if option is None:
            hint = _did_you_mean(key, tuple(known), '"{}"')
            problems.append(f'[{name}] unknown key "{key}"{hint}')
            continue
        try:
            values[key] = option.metadata["parse"](value)
        except _Expected as exc:
            problems.append(f"[{name}] {key} must be {exc}, got {_show(value)}")
    return cls(**values)


def _cross_checks(sections: Mapping[str, Any]) -> list[str]:
    watch: WatchConfig = sections["watch"]
    if watch.debounce_max_wait_seconds < watch.debounce_quiet_seconds:
        return [
            "[watch] debounce_max_wait_seconds must be >= debounce_quiet_seconds "
            f"({watch.debounce_quiet_seconds:g}), got {watch.debounce_max_wait_seconds:g}"
        ]
    return []


def _did_you_mean(word: str, choices: tuple[str, ...], form: str) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    if close:
        return "; did you mean " + form.format(close[0]) + "?"
    return "; known: " + ", ".join(form.format(choice) for choice in choices)


def _show(value: Any) -> str:
    """A value as the user wrote it, for error messages."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return _toml_value(value)


def with_overrides(config: Config, overrides: Mapping[str, Any]) -> Config:
    """Apply command-line values ("metrics.port" -> 9464) with the file's validation."""
    problems: list[str] = []
    sections = {name: getattr(config, name) for name in SECTIONS}
    for dotted, value in overrides.items():
        name, _, key = dotted.partition(".")
        single = _parse_section(name, type(sections[name]), {key: value}, problems)
        sections[name] = dataclasses.replace(sections[name], **{key: getattr(single, key)})
    problems.extend(_cross_checks(sections))
    if problems:
        raise ConfigError("command line", problems)
    return Config(
        **sections,
        source=config.source,
        warnings=config.warnings,
        overrides=(*config.overrides, *(k for k in overrides if k not in config.overrides)),
    )


def load_config(path: str | Path, *, required: bool = False) -> Config:
    """Read and validate the config file. A missing file means the defaults, unless required
    (a file named with --config or TFSM_CONFIG must exist)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        if required:
            raise ConfigError(str(path), ["no such file"]) from None
        return Config()
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            str(path), [f"not UTF-8 text ({exc.reason} at byte {exc.start})"]
        ) from None
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read it: {exc.strerror or exc}"]) from None
    config = parse_config(data, str(path))
    return dataclasses.replace(config, warnings=config_warnings(config))


def config_warnings(config: Config) -> tuple[str, ...]:
    """Named files that do not exist (yet): the monitor reports them, it does not stop."""
    warnings = [
        f"[watch] pythons: {python} does not exist (it will be reported as missing)"
        for python in config.watch.pythons
        if not os.path.exists(python)
    ]
    if config.nvml.library and not os.path.exists(config.nvml.library):
        warnings.append(f"[nvml] library: {config.nvml.library} does not exist")
    textfile = config.metrics.textfile
    if textfile and not os.path.isdir(os.path.dirname(textfile)):
        warnings.append(f"[metrics] textfile: directory {os.path.dirname(textfile)} does not exist")
    if config.metrics.port is not None and not _is_loopback(config.metrics.address):
        warnings.append(
            f"[metrics] address {config.metrics.address}: metrics are served to other machines"
        )
    return tuple(warnings)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


# --------------------------------------------------------------------------- paths


@dataclass(frozen=True)
class Paths:
    """Where the monitor's files are. config_origin: "--config", "TFSM_CONFIG" or "default"."""

    config_file: Path
    config_origin: str
    state_dir: Path
    log_dir: Path
    history_db: Path
    lock_file: Path
    control_socket: Path

    @property
    def config_explicit(self) -> bool:
        """A file the user named must exist; the default one may be missing."""
        return self.config_origin != "default"

    @property
    def log_file(self) -> Path:
        return self.log_dir / LOG_FILE_NAME


def resolve_paths(config_flag: str | None = None, env: Mapping[str, str] | None = None) -> Paths:
    """The platformdirs locations; the config file from --config, else TFSM_CONFIG."""
    env = os.environ if env is None else env
    if config_flag:
        config_file, origin = Path(config_flag).expanduser().absolute(), "--config"
    elif env.get(CONFIG_ENV):
        config_file, origin = Path(env[CONFIG_ENV]).expanduser().absolute(), CONFIG_ENV
    else:
        config_file = platformdirs.user_config_path(APP_NAME, appauthor=False) / CONFIG_FILE_NAME
        origin = "default"
    state_dir = platformdirs.user_state_path(APP_NAME, appauthor=False)
    return Paths(
        config_file=config_file,
        config_origin=origin,
        state_dir=state_dir,
        log_dir=platformdirs.user_log_path(APP_NAME, appauthor=False),
        history_db=state_dir / "history.sqlite3",
        lock_file=state_dir / "daemon.lock",
        control_socket=control_socket_path(_runtime_base(env), state_dir),
    )


def _runtime_base(env: Mapping[str, str]) -> Path | None:
    """The per-user runtime directory, without platformdirs' /tmp fallback (and its warning).

    It does not depend on the environment alone: the daemon (started at login) and the CLI
    (from a shell) must agree on the socket path.
    """
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return Path(env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}")
    if sys.platform == "darwin":
        return platformdirs.user_runtime_path(APP_NAME, appauthor=False).parent
    return None


def control_socket_path(runtime_base: Path | None, state_dir: Path) -> Path:
    """In the runtime dir when there is one, else the state dir; short enough for AF_UNIX."""
    candidates = []
    if runtime_base is not None and runtime_base.is_dir():
        candidates.append(runtime_base / APP_NAME / "control.sock")
    candidates.append(state_dir / "control.sock")
    for candidate in candidates:
        if len(os.fsencode(candidate)) <= MAX_SOCKET_PATH_BYTES:
            return candidate
    user = os.getuid() if hasattr(os, "getuid") else getpass.getuser()
    return Path(tempfile.gettempdir()) / f"{APP_NAME}-{user}" / "control.sock"


# --------------------------------------------------------------------------- rendering


def render_config(config: Config, paths: Paths) -> str:
    """The effective config as TOML (it parses back to the same values), with the locations."""
    if config.source:
        values_from = f"{config.source}; keys it does not set take the defaults"
    else:
        values_from = "built-in defaults (no config file)"
    exists = "exists" if paths.config_file.is_file() else "does not exist"
    origin = "default location" if paths.config_origin == "default" else paths.config_origin
    lines = [
        f"# {APP_NAME}: the effective configuration",
        f"# config file:    {paths.config_file} ({exists}; {origin})",
        f"# values from:    {values_from}",
    ]
    if config.overrides:
        lines.append(f"# command line:   {', '.join(config.overrides)}")
    lines += [
        f"# log file:       {paths.log_file}",
        f"# state dir:      {paths.state_dir}",
        f"# history:        {paths.history_db}",
        f"# lock file:      {paths.lock_file}",
        f"# control socket: {paths.control_socket}",
        *(f"# warning: {warning}" for warning in config.warnings),
        "",
    ]
    return "\n".join(lines) + _render_body(config)


def example_config(paths: Paths | None = None) -> str:
    """A documented config file with every key at its default (`config --example`)."""
    where = paths.config_file if paths else f"<user config dir>/{APP_NAME}/{CONFIG_FILE_NAME}"
    header = (
        f"# {APP_NAME} configuration. Every key is optional: these are the defaults.\n"
        f"# Save it as {where}\n"
        f"# (or point {CONFIG_ENV} or --config at another file).\n"
        "# Durations carry their unit in the key name.\n\n"
    )
    return header + _render_body(Config())


def _render_body(config: Config) -> str:
    blocks = []
    for name, cls in _sections():
        section = getattr(config, name)
        lines = [f"[{name}]"]
        if cls.__doc__:
            lines.insert(0, f"# {cls.__doc__}")
        for option in dataclasses.fields(section):
            lines += [f"# {line}" for line in textwrap.wrap(option.metadata["doc"], 96)]
            value = getattr(section, option.name)
            if value is None:
                lines.append(f"# {option.name} = {option.metadata['example']}")
            else:
                lines.append(f"{option.name} = {_toml_value(value)}")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    # JSON string escapes are valid TOML basic-string escapes, except that TOML also wants DEL.
    return json.dumps(str(value)).replace("\x7f", "\\u007f")
