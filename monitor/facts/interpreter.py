"""Ask a watched interpreter where it looks for packages: one short child process.

Stdlib only and free of the model, so the CLI can start the question before it imports the
rest of the monitor: the child's start-up (the slowest step of a check) then overlaps with
ours. `tensorflow.probe_python` reads the answer.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.facts.paths import Root

_MARKER = "@@tf-stack-monitor@@"

# Run by the watched interpreter with `-c`. Python 2.7 / 3.5 syntax on purpose (TF 2.0 and 2.1
# had wheels for them); stdlib only; never imports anything the user installed. The result is
# one marked line, so whatever a .pth file or sitecustomize prints does not spoil it.
_CHILD = r"""
import sys
if sys.path and sys.path[0] == '':
    del sys.path[0]
import json, site
sites = []
try:
    sites.extend(site.getsitepackages())
except Exception:
    pass
if getattr(site, 'ENABLE_USER_SITE', False):
    try:
        sites.append(site.getusersitepackages())
    except Exception:
        pass
facts = {
    'version': '.'.join(str(p) for p in sys.version_info[:3]),
    'bits': 64 if sys.maxsize > 2 ** 32 else 32,
    'platform': sys.platform,
    'prefix': sys.prefix,
    'path': [p for p in sys.path if isinstance(p, str)],
    'site': sites,
}
sys.stdout.write('\n' + MARKER + json.dumps(facts) + '\n')
sys.stdout.flush()
""".replace("MARKER", repr(_MARKER))

# -B: never write .pyc files into the user's environment. Not -E/-s/-I/-S: PYTHONPATH, the
# user site and site-packages are exactly what the user's programs see.
_FLAGS = ("-B",)


class InterpreterQuery:
    """The question put to one interpreter; `answer` waits for it (once)."""

    def __init__(self, name: str, path: str, env: Mapping[str, str] | None) -> None:
        self.name = name
        self._child: subprocess.Popen | None = None
        self._error: str | None = None
        try:
            self._child = subprocess.Popen(
                [path, *_FLAGS, "-c", _CHILD],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=None if env is None else dict(env),
                start_new_session=os.name == "posix",
            )
        except FileNotFoundError:
            self._error = f"{name}: no such interpreter"
        except PermissionError:
            self._error = f"{name}: not executable (permission denied)"
        except OSError as exc:
            self._error = f"{name}: cannot be started: {exc.strerror or exc}"

    def answer(self, timeout: float) -> tuple[dict, None] | tuple[None, str]:
        """(facts, None), or (None, why not) after at most `timeout` seconds."""
        child = self._child
        if child is None:
            return None, self._error or f"{self.name}: not started"
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(child)
            return None, f"{self.name} did not answer within {timeout:g} s (killed)"
        except BaseException:  # Ctrl-C: the child has its own session, so it is ours to end
            _kill(child)
            raise
        facts = _parse_answer(out)
        if child.returncode != 0 or facts is None:
            return None, _failure(self.name, child.returncode, out, err)
        return facts, None

    def cancel(self) -> None:
        """End the child if nobody is going to read its answer."""
        if self._child is not None and self._child.poll() is None:
            _kill(self._child)


def start_query(
    executable: str, root: Root | None = None, env: Mapping[str, str] | None = None
) -> InterpreterQuery:
    """Start asking `executable` (a system path; `root` maps it to this disk)."""
    path = executable if root is None else root.path(executable)
    return InterpreterQuery(executable, path, env)


def _kill(child: subprocess.Popen) -> None:
    """Kill the child and whatever it started (a hung sitecustomize may have spawned more)."""
    try:
        if os.name == "posix":
            os.killpg(child.pid, signal.SIGKILL)
        else:
            child.kill()
    except OSError:
        pass
    child.wait()  # not communicate(): an escaped grandchild may hold the pipes open
    for stream in (child.stdout, child.stderr):
        if stream:
            stream.close()


def _parse_answer(out: bytes) -> dict | None:
    text = out.decode("utf-8", "replace")
    for line in reversed(text.splitlines()):
        if line.startswith(_MARKER):
            try:
                value = json.loads(line[len(_MARKER) :])
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def _failure(executable: str, code: int | None, out: bytes, err: bytes) -> str:
    if code is not None and code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
    elif code:
        how = f"exited with status {code}"
    else:
        how = "printed no answer"
    tail = (err or out).decode("utf-8", "replace").strip()[-400:]
    return f"{executable} {how}" + (f": {tail}" if tail else "")


def default_interpreters(
    env: Mapping[str, str],
    own_executable: str = sys.executable,
    own_path: Sequence[str] | None = None,
) -> tuple[str, ...]:
    """The `python3` / `python` on PATH, and the monitor's own interpreter if it has TF.

    Two names count as one interpreter when they sit in the same (real) directory and resolve
    to the same file: a venv's python and python3 are one, but a venv's python is not the
    base interpreter it links to (same real file, other site-packages).
    """
    search = env.get("PATH", "")
    candidates = [shutil.which(name, path=search) for name in ("python3", "python")]
    own_path = sys.path if own_path is None else own_path
    if own_executable and find_tensorflow_package([p for p in own_path if p and os.path.isdir(p)]):
        candidates.append(own_executable)
    seen: set[tuple[str, str]] = set()
    chosen = []
    for candidate in candidates:
        if not candidate:
            continue
        absolute = os.path.abspath(candidate)
        key = (os.path.realpath(os.path.dirname(absolute)), os.path.realpath(absolute))
        if key not in seen:
            seen.add(key)
            chosen.append(absolute)
    return tuple(chosen)


def find_tensorflow_package(dirs: Sequence[str]) -> str | None:
    """Where `import tensorflow` would look: a regular package first, else a leftover dir."""
    for directory in dirs:
        if os.path.isfile(os.path.join(directory, "tensorflow", "__init__.py")):
            return os.path.join(directory, "tensorflow")
    for directory in dirs:
        if os.path.isdir(os.path.join(directory, "tensorflow")):
            return os.path.join(directory, "tensorflow")
    return None
