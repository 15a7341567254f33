"""The command line: `tf-stack-monitor check` and friends."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Sequence

from monitor import __version__

DESCRIPTION = "Checks that TensorFlow can use the GPU, and says exactly what to fix."

CHECK_EPILOG = """\
exit codes: 0 healthy, 1 warnings only, 2 broken, 3 the check itself failed

examples:
  tf-stack-monitor check
  tf-stack-monitor check --python ~/venvs/tf/bin/python --json
  tf-stack-monitor check --save-snapshot bundle.json --redact
  tf-stack-monitor check --snapshot bundle.json
"""


def build_parser(daemon_commands: bool = True) -> argparse.ArgumentParser:
    """The whole command line; without the daemon's commands when `check` alone is wanted
    (building a dozen subparsers is a tenth of a fast check)."""
    parser = argparse.ArgumentParser(prog="tf-stack-monitor", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = commands.add_parser(
        "check",
        help="check the stack once and print what is broken and how to fix it",
        description="Read every link of the TensorFlow GPU stack (driver, GPUs, CUDA, cuDNN, "
        "the libraries TensorFlow will load, the TensorFlow build, Python, environment) and "
        "report what is broken or at risk, with the fix. TensorFlow is never imported.",
        epilog=CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common_options(check)
    check.add_argument(
        "--snapshot", metavar="FILE", help="judge a saved snapshot instead of this machine"
    )
    check.add_argument(
        "--root",
        default="/",
        metavar="DIR",
        help="read the machine's files under DIR (for offline diagnosis of a mounted disk; "
        "default /)",
    )
    check.add_argument(
        "--gpu-test",
        action="store_true",
        help="also run the GPU load test in each watched interpreter",
    )
    check.set_defaults(handler=_check)

    gpu_test = commands.add_parser(
        "gpu-test",
        help="prove TensorFlow computes on the GPU (matmul + Keras step in a child process)",
        description="Run the check, then in each watched interpreter a child process that "
        "imports TensorFlow, lists the GPUs, runs a matmul on /GPU:0 checked against the CPU "
        "and a Keras train step, and reports what stopped it if anything did.",
        epilog="exit codes: 0 healthy, 1 warnings only, 2 broken, 3 the check itself failed",
    )
    _add_common_options(gpu_test)
    gpu_test.set_defaults(handler=_check, gpu_test=True, snapshot=None, root="/")

    if daemon_commands:
        from monitor.cli_daemon import add_commands

        add_commands(commands)
    return parser


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--python",
        action="append",
        metavar="PATH",
        dest="pythons",
        help="a Python interpreter whose TensorFlow to check (repeatable; default: the python "
        "on PATH, plus this one if it has TensorFlow)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--save-snapshot",
        metavar="FILE",
        help="also write the whole inventory and report to FILE (a support bundle)",
    )
    parser.add_argument(
        "--redact",
        action="store_true",
        help="replace user name, home path and host name in the output and snapshot",
    )
    parser.add_argument(
        "--nvml-library", metavar="PATH", help="load NVML from this file instead of the system's"
    )
    parser.add_argument(
        "--python-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="give up on a watched interpreter after this long (default 10)",
    )
    parser.add_argument(
        "--gpu-test-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="give up on a GPU load test after this long (default 120)",
    )
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the text output (default: only on a terminal)",
    )


def console() -> int:
    """The console script and `python -m monitor`: `main`, then a quicker exit."""
    code = main()
    # The process ends now: spare it the collector's passes over every object at exit
    # (7 ms, a tenth of a check).
    gc.freeze()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(daemon_commands=command not in ("check", "gpu-test"))
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return 130


def _check(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    # Ask the watched interpreters first: their start-up then overlaps with our imports.
    queries = {} if args.snapshot else _ask_interpreters(args)

    from monitor.check import judge, run_check

    try:
        if args.snapshot:
            from monitor.snapshot import load_inventory

            with open(args.snapshot, encoding="utf-8") as handle:
                report = judge(load_inventory(handle.read()))
        else:
            report = run_check(
                root=args.root,
                pythons=list(queries),  # the interpreters already asked
                nvml_library=args.nvml_library,
                python_timeout=args.python_timeout,
                queries=queries,
                started=started,
            )
        if args.gpu_test and not args.snapshot:
            from monitor.check import with_load_tests

            report = with_load_tests(
                report, timeout=args.gpu_test_timeout, nvml_library=args.nvml_library
            )
    except Exception as exc:
        return _check_failed(exc)

    from monitor.report import EXIT_CHECK_FAILED, exit_code, render_json, render_text
    from monitor.snapshot import redact, snapshot_document

    document = render_json(report)
    host = report.inventory.host
    if args.redact:
        document = redact(document, host.user, host.home, host.hostname)
    if args.save_snapshot:
        try:
            _write_json(args.save_snapshot, snapshot_document(document))
        except OSError as exc:
            print(
                f"tf-stack-monitor: cannot write snapshot {args.save_snapshot}: "
                f"{exc.strerror or exc}",
                file=sys.stderr,
            )
            return EXIT_CHECK_FAILED
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        text = render_text(report, colour=_use_colour(args.color), unicode=_stdout_unicode())
        if args.redact:
            text = redact(text, host.user, host.home, host.hostname)
        sys.stdout.write(text)
        if args.save_snapshot:
            print(f"Snapshot written to {args.save_snapshot}")
    return exit_code(report)


def _check_failed(exc: Exception) -> int:
    """Say why the check could not be made, briefly; exit 3."""
    from monitor.report import EXIT_CHECK_FAILED
    from monitor.snapshot import SnapshotError

    if isinstance(exc, (OSError, SnapshotError)):
        print(f"tf-stack-monitor: cannot check: {exc}", file=sys.stderr)
    else:  # a bug of ours: keep it short
        print(
            f"tf-stack-monitor: the check itself failed: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
    return EXIT_CHECK_FAILED


def _ask_interpreters(args: argparse.Namespace) -> dict:
    from monitor.facts.interpreter import default_interpreters, start_query

    pythons = args.pythons or default_interpreters(os.environ, sys.executable)
    root = None
    if args.root != "/":  # only then: importing Root (and `typing`) delays the asking
        from monitor.facts.paths import Root

        root = Root(args.root)
    return {exe: start_query(exe, root, os.environ) for exe in pythons}


def _write_json(path: str, document: dict) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)


def _use_colour(choice: str) -> bool:
    if choice != "auto":
        return choice == "always"
    return (
        sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    )


def _stdout_unicode() -> bool:
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower()
    return encoding.startswith("utf")
