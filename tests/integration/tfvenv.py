"""The cached venv with the real TensorFlow wheel, and cheap throw-away copies of it to break.

The venv lives under ~/.cache/tf-stack-monitor-tests/venv-<key>, the key being a hash of
requirements.txt and the Python version, so CI and later runs reuse it. It is built beside its
final place and renamed into it, under a lock, so a half-built venv is never used.

Tests never modify it: `clone_venv` makes a hard-link copy (cp -al) in which a test may delete
files (unlinking a link leaves the original intact) or `pip uninstall`. Never write into a file
of a copy in place: that would write through to the cached venv.

Used by tests/integration/conftest.py and benchmarks/bench_check.py (stdlib only).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REQUIREMENTS = Path(__file__).with_name("requirements.txt")
# tests/conftest.py points HOME at a tmp dir for every test: read the real one from passwd.
CACHE_ROOT = Path(
    os.environ.get("TFSM_TEST_CACHE")
    or os.path.join(pwd.getpwuid(os.getuid()).pw_dir, ".cache", "tf-stack-monitor-tests")
)
_COMPLETE = ".tfsm-complete"


def venv_key(python: str = sys.executable) -> str:
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    digest = hashlib.sha256(REQUIREMENTS.read_bytes() + b"\0" + version.encode())
    return digest.hexdigest()[:16]


def venv_path(python: str = sys.executable) -> Path:
    return CACHE_ROOT / f"venv-{venv_key(python)}"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def site_packages(venv: Path) -> Path:
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    if not found:
        raise FileNotFoundError(f"no site-packages under {venv}")
    return found[0]


def ensure_venv(python: str = sys.executable, log=print) -> Path:
    """The cached TF venv, built (once, atomically) when missing. Returns its directory."""
    target = venv_path(python)
    if (target / _COMPLETE).exists():
        return target
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with open(CACHE_ROOT / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / _COMPLETE).exists():
            return target
        if target.exists():  # left by an older, interrupted layout: rebuild
            shutil.rmtree(target)
        building = Path(tempfile.mkdtemp(prefix=f"{target.name}.building-", dir=CACHE_ROOT))
        try:
            started = time.monotonic()
            log(f"building the TensorFlow test venv in {target} (pip install, once)...")
            subprocess.run([python, "-m", "venv", str(building)], check=True)
            subprocess.run(
                [
                    str(venv_python(building)),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                    str(REQUIREMENTS),
                ],
                check=True,
            )
            (building / _COMPLETE).write_text(REQUIREMENTS.read_text())
            os.rename(building, target)
            log(f"built in {time.monotonic() - started:.0f} s")
        finally:
            if building.exists():
                shutil.rmtree(building, ignore_errors=True)
    return target


def _same_filesystem(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev


def clone_venv(venv: Path, parent: Path) -> Path:
    """A hard-link copy of `venv` under `parent` (or beside the cache when on another disk).

    The copy's python finds the copy's pyvenv.cfg, so its sys.prefix and site-packages are
    the copy's own (console-script shebangs still name the original: use `python -m`).
    """
    parent.mkdir(parents=True, exist_ok=True)
    if not _same_filesystem(venv, parent):
        scratch = CACHE_ROOT / "scratch"
        scratch.mkdir(parents=True, exist_ok=True)
        parent = Path(tempfile.mkdtemp(dir=scratch))
    copy = parent / venv.name
    subprocess.run(["cp", "-al", str(venv), str(copy)], check=True)
    (copy / _COMPLETE).unlink(missing_ok=True)
    return copy


def remove_clone(copy: Path) -> None:
    """Delete a copy made by clone_venv (only ever a copy: never the cached venv)."""
    if (copy / _COMPLETE).exists() or copy.parent == CACHE_ROOT:
        raise ValueError(f"refusing to delete {copy}: it is the cached venv, not a copy")
    shutil.rmtree(copy, ignore_errors=True)
    if copy.parent.parent == CACHE_ROOT / "scratch":
        with contextlib.suppress(OSError):
            copy.parent.rmdir()


if __name__ == "__main__":
    print(ensure_venv())
