"""Log setup: a rotating file in the platformdirs log dir, optionally stderr too.

The daemon runs for weeks with nobody watching its terminal, so the file is where a user
(or a bug report) finds what happened; it is bounded so it never fills the disk.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from monitor.config import LOG_FILE_NAME, resolve_paths

MAX_BYTES = 1_000_000
BACKUP_COUNT = 5
FILE_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s [%(threadName)s] %(message)s"
STDERR_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
_MARK = "_tfsm_handler"

log = logging.getLogger(__name__)


def log_dir() -> Path:
    """The platformdirs user log directory of the monitor."""
    return resolve_paths().log_dir


def setup_logging(
    directory: Path | None, verbose: bool = False, to_stderr: bool = False, level: str = "info"
) -> Path | None:
    """Send the root logger to a rotating file in `directory` (None: no file) and/or stderr.

    Calling it again replaces the handlers it added before, so it never logs twice.
    verbose means debug, whatever `level` says. Returns the log file, or None when there is
    none (not asked for, or unwritable: then stderr gets the logs and a warning says why).
    """
    root = logging.getLogger()
    remove_handlers()
    root.setLevel(logging.DEBUG if verbose else getattr(logging, level.upper(), logging.INFO))
    log_file: Path | None = None
    problem = ""
    if directory is not None:
        log_file = Path(directory) / LOG_FILE_NAME
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            handler: logging.Handler = logging.handlers.RotatingFileHandler(
                log_file, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8"
            )
        except FileExistsError:
            problem = f"cannot write the log file {log_file}: {directory} is not a directory"
            log_file = None
        except OSError as exc:
            problem = f"cannot write the log file {log_file}: {exc.strerror or exc}"
            log_file = None
        else:
            _add(root, handler, FILE_FORMAT)
    if to_stderr or problem:
        _add(root, logging.StreamHandler(sys.stderr), STDERR_FORMAT)
    if problem:
        log.warning("%s; logging to stderr instead", problem)
    return log_file


def remove_handlers() -> None:
    """Close and remove the handlers setup_logging added (tests, and a re-setup)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
            handler.close()


def _add(root: logging.Logger, handler: logging.Handler, fmt: str) -> None:
    handler.setFormatter(logging.Formatter(fmt, DATE_FORMAT))
    setattr(handler, _MARK, True)
    root.addHandler(handler)
