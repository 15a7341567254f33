"""The resident monitor's commands: run, status, check-now, pause, resume, stop, history,
config, report, autostart. `cli.py` adds them to its parser; imports are lazy so `check`
stays fast."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from monitor.text import plural

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2

RUN_EPILOG = """\
examples:
  tf-stack-monitor run                      # with the tray icon where there is a desktop
  tf-stack-monitor run --headless --metrics-port 9464
  tf-stack-monitor run --headless --textfile /var/lib/node_exporter/textfile/tfsm.prom

exit codes: 0 stopped cleanly, 1 another monitor is already running, 2 bad config,
3 the monitor failed
"""


def add_commands(commands: Any) -> None:
    """Add the daemon's subcommands to the top-level parser's subparsers."""
    config_parent = argparse.ArgumentParser(add_help=False)
    config_parent.add_argument(
        "--config", metavar="FILE", help="the config file (default: see `tf-stack-monitor config`)"
    )

    run = commands.add_parser(
        "run",
        parents=[config_parent],
        help="watch the stack in the background (tray icon, notifications, metrics)",
        description="Watch for driver updates, CUDA/cuDNN installs, PATH changes and package "
        "changes; re-check after each, remember the results and tell the user.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--headless", action="store_true", help="no tray icon (servers, systemd)")
    run.add_argument("--metrics-port", type=int, metavar="N", help="serve Prometheus /metrics")
    run.add_argument("--metrics-address", metavar="ADDR", help="listen address (127.0.0.1)")
    run.add_argument("--textfile", metavar="PATH", help="write node_exporter textfile metrics")
    run.add_argument(
        "--quiet-hours", metavar="HH:MM-HH:MM", help='no notifications then ("22:00-07:00")'
    )
    run.add_argument("--verbose", action="store_true", help="debug logging, also to stderr")
    run.add_argument(
        "--root",
        default="/",
        metavar="DIR",
        help="watch the machine whose files are under DIR (for tests and benchmarks; default /)",
    )
    run.set_defaults(handler=_run)

    status = commands.add_parser(
        "status", parents=[config_parent], help="what the running monitor sees now"
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(handler=_status)

    check_now = commands.add_parser(
        "check-now", parents=[config_parent], help="ask the running monitor to check now"
    )
    check_now.add_argument("--gpu-test", action="store_true", help="run the GPU load test too")
    check_now.add_argument(
        "--no-wait", action="store_true", help="return at once instead of waiting for the result"
    )
    check_now.set_defaults(handler=_check_now)

    for name, text in (
        ("pause", "stop reacting to changes until `resume`"),
        ("resume", "react to changes again (and check what changed meanwhile)"),
        ("stop", "stop the running monitor"),
    ):
        simple = commands.add_parser(name, parents=[config_parent], help=text)
        simple.set_defaults(handler=_simple, control_command=name)

    history = commands.add_parser(
        "history",
        parents=[config_parent],
        help="when the stack broke, what changed just before, and when it was fixed",
    )
    history.add_argument("--json", action="store_true", help="print the history as JSON")
    history.add_argument("--all", action="store_true", help="every check, not only transitions")
    history.add_argument("--limit", type=int, default=20, metavar="N", help="entries (20)")
    history.set_defaults(handler=_history)

    config = commands.add_parser(
        "config", parents=[config_parent], help="print the effective config and file locations"
    )
    config.add_argument("--example", action="store_true", help="print a documented example")
    config.set_defaults(handler=_config)

    report = commands.add_parser(
        "report",
        parents=[config_parent],
        help="write the HTML report page (chain diagram, findings, history) and open it",
    )
    report.add_argument("--output", metavar="FILE", help="where to write it (state dir)")
    report.add_argument("--no-open", action="store_true", help="do not open a browser")
    report.add_argument(
        "--python", action="append", dest="pythons", metavar="PATH", help="interpreter to check"
    )
    report.add_argument("--gpu-test", action="store_true", help="run the GPU load test too")
    report.set_defaults(handler=_report)

    autostart = commands.add_parser(
        "autostart", help="start the monitor at login: enable, disable or show the state"
    )
    autostart.add_argument("action", choices=("enable", "disable", "status"))
    autostart.add_argument(
        "--method",
        choices=("xdg", "systemd-user", "windows-run", "launchagent"),
        help="how (default: XDG autostart on a desktop, a systemd user unit without one)",
    )
    autostart.set_defaults(handler=_autostart)


# --------------------------------------------------------------------------- helpers


def _load(args: argparse.Namespace) -> tuple[Any, Any] | None:
    """(config, paths), or None after printing why the config is unusable."""
    from monitor.config import ConfigError, load_config, resolve_paths

    paths = resolve_paths(getattr(args, "config", None))
    try:
        config = load_config(paths.config_file, required=paths.config_explicit)
    except ConfigError as exc:
        print(f"tf-stack-monitor: {exc}", file=sys.stderr)
        return None
    return config, paths


def _ask(args: argparse.Namespace, message: dict, timeout: float = 10.0) -> dict | None:
    """One control request; None after printing why the monitor could not be reached."""
    from monitor import control
    from monitor.service import key_file

    loaded = _load(args)
    if loaded is None:
        return None
    _, paths = loaded
    try:
        key = control.load_key(key_file(paths), create=False)
        return control.request(paths.control_socket, key, message, timeout=timeout)
    except control.ControlError as exc:
        print(f"tf-stack-monitor: {exc}", file=sys.stderr)
        return None


# --------------------------------------------------------------------------- handlers


def _run(args: argparse.Namespace) -> int:
    from monitor.config import ConfigError, with_overrides
    from monitor.logs import setup_logging
    from monitor.service import run_monitor

    loaded = _load(args)
    if loaded is None:
        return EXIT_USAGE
    config, paths = loaded
    overrides = {
        key: value
        for key, value in (
            ("metrics.port", args.metrics_port),
            ("metrics.address", args.metrics_address),
            ("metrics.textfile", args.textfile),
            ("notifications.quiet_hours", args.quiet_hours),
        )
        if value is not None
    }
    try:
        config = with_overrides(config, overrides) if overrides else config
    except ConfigError as exc:
        print(f"tf-stack-monitor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    log_file = setup_logging(
        paths.log_dir,
        verbose=args.verbose,
        to_stderr=args.verbose or (sys.stderr is not None and sys.stderr.isatty()),
        level=config.log.level,
    )
    if log_file is not None and sys.stderr is not None and sys.stderr.isatty():
        print(f"tf-stack-monitor: running; log: {log_file}", file=sys.stderr)
    return run_monitor(config, paths, headless=args.headless, root=args.root)


def _status(args: argparse.Namespace) -> int:
    reply = _ask(args, {"command": "status"})
    if reply is None:
        return EXIT_PROBLEM
    if args.json:
        print(json.dumps(reply, indent=2))
    else:
        print(format_status(reply))
    return EXIT_OK


def format_status(status: dict) -> str:
    """The running monitor's status for people."""
    counts = status.get("findings", {})
    lines = [
        f"tf-stack-monitor is running (PID {status.get('pid')}), {status.get('state')}"
        + (", paused" if status.get("paused") else "")
        + (", checking now" if status.get("busy") else ""),
        f"  {status.get('headline', '')}",
        f"  last check: {status.get('last_check_at') or 'none yet'}"
        f" ({status.get('last_check_seconds', 0)} s; {status.get('checks', 0)} since start"
        f" at {status.get('started_at', '?')})",
        "  findings: "
        + ", ".join(
            plural(counts.get(key, 0), word)
            for key, word in (("error", "error"), ("warning", "warning"), ("info", "note"))
        ),
    ]
    if status.get("problem"):
        lines.append(f"  problem: {status['problem']}")
    watches = status.get("watches") or {}
    if watches:
        total = sum(watches.values())
        parts = ", ".join(f"{name} {count}" for name, count in watches.items())
        lines.append(f"  watching: {total} directories ({parts})")
    for key in ("tray", "metrics", "log_file"):
        if status.get(key):
            label = {"tray": "", "metrics": "metrics: ", "log_file": "log: "}[key]
            lines.append(f"  {label}{status[key]}")
    for name, note in (status.get("notes") or {}).items():
        lines.append(f"  {name}: {note}")
    return "\n".join(lines)


def _check_now(args: argparse.Namespace) -> int:
    wait = 0 if args.no_wait else (600.0 if args.gpu_test else 120.0)
    message = {"command": "check-now", "gpu_test": args.gpu_test, "wait": wait}
    reply = _ask(args, message, timeout=wait + 10)
    if reply is None:
        return EXIT_PROBLEM
    if not reply.get("ok"):
        print(f"tf-stack-monitor: {reply.get('error')}", file=sys.stderr)
        return EXIT_PROBLEM
    print("check queued" if reply.get("queued") else format_status(reply))
    return EXIT_OK


def _simple(args: argparse.Namespace) -> int:
    reply = _ask(args, {"command": args.control_command})
    if reply is None:
        return EXIT_PROBLEM
    if not reply.get("ok"):
        print(f"tf-stack-monitor: {reply.get('error')}", file=sys.stderr)
        return EXIT_PROBLEM
    words = {"pause": "paused", "resume": "resumed", "stop": "stopping"}
    print(f"tf-stack-monitor: {words[args.control_command]}")
    return EXIT_OK


def _history(args: argparse.Namespace) -> int:
    from monitor.history import History, HistoryError
    from monitor.timeline import render_timeline_json, render_timeline_text

    loaded = _load(args)
    if loaded is None:
        return EXIT_USAGE
    _, paths = loaded
    if not paths.history_db.exists():
        print(f"No history yet: the monitor has not run ({paths.history_db} does not exist).")
        return EXIT_OK
    try:
        with History(paths.history_db) as history:
            entries = history.timeline(limit=args.limit, transitions_only=not args.all)
    except HistoryError as exc:
        print(f"tf-stack-monitor: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    if args.json:
        print(json.dumps(render_timeline_json(entries), indent=2))
    else:
        sys.stdout.write(render_timeline_text(entries))
    return EXIT_OK


def _config(args: argparse.Namespace) -> int:
    from monitor.config import example_config, render_config

    loaded = _load(args)
    if loaded is None:
        return EXIT_USAGE
    config, paths = loaded
    print(example_config(paths) if args.example else render_config(config, paths))
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from monitor.check import run_check, with_load_tests
    from monitor.history import History, HistoryError
    from monitor.report_html import open_in_browser, render_html, write_report
    from monitor.service import REPORT_FILE

    loaded = _load(args)
    if loaded is None:
        return EXIT_USAGE
    config, paths = loaded
    pythons = args.pythons or list(config.watch.pythons) or None
    report = run_check(pythons=pythons, nvml_library=config.nvml.library)
    if args.gpu_test:
        report = with_load_tests(
            report,
            timeout=config.load_test.timeout_seconds,
            nvml_library=config.nvml.library,
            pythons=pythons,
        )
    timeline: list = []
    if paths.history_db.exists():
        try:
            with History(paths.history_db) as history:
                timeline = history.timeline(limit=30)
        except HistoryError as exc:
            print(f"tf-stack-monitor: history left out: {exc}", file=sys.stderr)
    try:
        path = write_report(
            args.output or paths.state_dir / REPORT_FILE, render_html(report, timeline)
        )
    except OSError as exc:
        print(f"tf-stack-monitor: cannot write the report: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"Report written to {path}")
    if not args.no_open:
        print(open_in_browser(path))
    return EXIT_OK


def _autostart(args: argparse.Namespace) -> int:
    from monitor import autostart

    action = {"enable": autostart.enable, "disable": autostart.disable, "status": autostart.status}
    try:
        result = action[args.action](args.method)
    except ValueError as exc:
        print(f"tf-stack-monitor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(autostart.format_status(result))
    wanted = args.action != "disable"
    return EXIT_OK if result.enabled == wanted and not result.problems else EXIT_PROBLEM
