"""Ask CUDA libraries their own version, in ONE short child process for all of them.

Loading a library runs its constructors, and a broken one can crash or hang the process that
loads it, so this never happens in the monitor itself: a child interpreter (`sys.executable -I
-S -c`) dlopens each file with ctypes, calls its version function and prints one JSON line per
file as soon as it has it. A crash or a timeout costs only the files not yet reported, and
every failure is data (an error string), never an exception.

The child gets the caller's `env`, so a library's own dependencies (libcublasLt for libcublas,
libnvJitLink for libcusparse) are found the way they would be for TensorFlow.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence

from monitor.record import record

DEFAULT_TIMEOUT_S = 5.0

# (kind, symbol) to try in order; the first that works gives the version.
#   int_out:  int f(int *v), 0 on success        size_t: size_t f(void)
#   property: int f(libraryPropertyType t, int *v) for MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL
#   two_out:  int f(unsigned *major, unsigned *minor)
CALLS: dict[str, tuple[tuple[str, str], ...]] = {
    "cudart": (("int_out", "cudaRuntimeGetVersion"),),
    "cudnn": (("size_t", "cudnnGetVersion"),),
    "cublas": (("property", "cublasGetProperty"),),
    "cublasLt": (("property", "cublasLtGetProperty"),),
    "cufft": (("property", "cufftGetProperty"), ("int_out", "cufftGetVersion")),
    "curand": (("property", "curandGetProperty"), ("int_out", "curandGetVersion")),
    "cusolver": (("property", "cusolverGetProperty"), ("int_out", "cusolverGetVersion")),
    "cusparse": (("property", "cusparseGetProperty"),),
    "nccl": (("int_out", "ncclGetVersion"),),
    "nvjitlink": (("two_out", "nvJitLinkVersion"),),
    "nvrtc": (("two_out", "nvrtcVersion"),),
}

# cheap and important first: a timeout then costs the big ones (cublasLt is ~500 MB)
_ORDER = (
    "cudart",
    "cudnn",
    "nvjitlink",
    "nvrtc",
    "curand",
    "nccl",
    "cufft",
    "cusparse",
    "cusolver",
    "cublas",
    "cublasLt",
)

_MAIN_CUDNN = re.compile(r"(lib)?cudnn(64_\d+\.dll|\.so(\.\d+)*)$")

_CHILD = r"""
import ctypes, json, os, sys
# answers go to a private copy of stdout; what the libraries print goes to stderr
answers = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
def emit(out):
    answers.write(json.dumps(out) + "\n")
    answers.flush()
for job in json.loads(sys.stdin.read()):
    out = {"id": job["id"]}
    try:
        lib = ctypes.CDLL(job["path"])
    except OSError as exc:
        out["error"] = "cannot load: %s" % (exc,)
        emit(out)
        continue
    errors = []
    for kind, symbol in job["calls"]:
        try:
            fn = getattr(lib, symbol)
        except AttributeError:
            continue
        try:
            if kind == "int_out":
                fn.restype = ctypes.c_int
                v = ctypes.c_int(0)
                rc = fn(ctypes.byref(v))
                values = [v.value]
            elif kind == "size_t":
                fn.restype = ctypes.c_size_t
                fn.argtypes = []
                rc, values = 0, [fn()]
            elif kind == "property":
                fn.restype = ctypes.c_int
                values, rc = [], 0
                for which in (0, 1, 2):
                    v = ctypes.c_int(0)
                    rc = fn(ctypes.c_int(which), ctypes.byref(v))
                    if rc:
                        break
                    values.append(v.value)
            elif kind == "two_out":
                fn.restype = ctypes.c_int
                a, b = ctypes.c_uint(0), ctypes.c_uint(0)
                rc = fn(ctypes.byref(a), ctypes.byref(b))
                values = [a.value, b.value]
            else:
                continue
        except Exception as exc:
            errors.append("%s: %s" % (symbol, exc))
            continue
        if rc:
            errors.append("%s returned status %s" % (symbol, rc))
            continue
        out["symbol"], out["kind"], out["values"] = symbol, kind, values
        break
    else:
        out["error"] = "; ".join(errors) or "no version function"
    emit(out)
"""


@record
class VersionResult:
    """What the child said about one file: a version, or why there is none."""

    version: str | None = None
    symbol: str = ""
    error: str | None = None


def calls_for(role: str, wanted: str) -> tuple[tuple[str, str], ...]:
    """The functions to try for a library; () when it has none worth calling.

    cuDNN sub-libraries (libcudnn_ops.so.9, cudnn_cnn_infer64_8.dll) are skipped: some are
    hundreds of MB and the main libcudnn tells the version of the set.
    """
    if role == "cudnn" and not _MAIN_CUDNN.match(wanted):
        return ()
    return CALLS.get(role, ())


def decode(role: str, kind: str, values: Sequence[int]) -> str | None:
    """The raw numbers a version function gave, as a version string."""
    if not values or any(not isinstance(v, int) or v < 0 for v in values):
        return None
    if kind in ("property", "two_out"):
        return ".".join(str(v) for v in values)
    value = values[0]
    if value <= 0:
        return None
    if role == "cudart":  # 12090 -> 12.9 (CUDART_VERSION = major*1000 + minor*10)
        return f"{value // 1000}.{value % 1000 // 10}"
    if role == "cudnn" or role == "nccl":
        # cuDNN >= 9 and NCCL >= 2.9: major*10000 + minor*100 + patch (90300, 22703);
        # before: major*1000 + minor*100 + patch (cuDNN 8906, NCCL 2708).
        if value >= 10000:
            return f"{value // 10000}.{value % 10000 // 100}.{value % 100}"
        return f"{value // 1000}.{value % 1000 // 100}.{value % 100}"
    # cuFFT, cuRAND, cuSOLVER: major*1000 + minor*100 + patch
    return f"{value // 1000}.{value % 1000 // 100}.{value % 100}"


def call_version_functions(
    jobs: Sequence[tuple[str, str, str]],
    env: Mapping[str, str],
    timeout: float = DEFAULT_TIMEOUT_S,
    python: str | None = None,
    child: VersionChild | None = None,
) -> dict[str, VersionResult]:
    """Run the child once for `jobs` = (real path, role, wanted) and return results by path.

    Files without version functions are left out of the child; with none left the child is
    not started. A path missing from the answer was not reached (crash or timeout) and gets
    an error result. child: one started earlier with the same `env` (see VersionChild).
    """
    todo = []
    for path, role, wanted in jobs:
        calls = calls_for(role, wanted)
        if calls and path not in {job["path"] for job in todo}:
            todo.append({"path": path, "role": role, "calls": [list(c) for c in calls]})
    if not todo:
        return {}
    rank = {role: index for index, role in enumerate(_ORDER)}
    todo.sort(key=lambda job: rank.get(job["role"], len(rank)))
    for index, job in enumerate(todo):
        job["id"] = index
    child = child or VersionChild(env, python)
    stdout, failure = child.run(json.dumps(todo), timeout)
    answers: dict[int, dict] = {}
    for line in stdout.splitlines():
        try:
            answer = json.loads(line)
        except ValueError:
            continue
        if isinstance(answer, dict) and isinstance(answer.get("id"), int):
            answers[answer["id"]] = answer
    results = {}
    for job in todo:
        answer = answers.get(job["id"])
        if answer is None:
            error = failure or "no answer from the version probe"
            results[job["path"]] = VersionResult(error=error)
            continue
        if "values" in answer:
            version = decode(job["role"], answer.get("kind", ""), answer["values"])
            if version:
                results[job["path"]] = VersionResult(version=version, symbol=answer["symbol"])
                continue
            error = f"{answer['symbol']} gave {answer['values']}"
            results[job["path"]] = VersionResult(error=error)
            continue
        results[job["path"]] = VersionResult(error=str(answer.get("error") or "unknown error"))
    return results


class VersionChild:
    """The child process that calls the version functions, started before its work is known.

    Starting an interpreter is most of its cost; started early, that overlaps with the probes
    that decide which files it will load. It reads its jobs from stdin, so `run` (or `close`
    when there is nothing to ask) must follow exactly once.
    """

    def __init__(self, env: Mapping[str, str], python: str | None = None) -> None:
        child_env = {k: v for k, v in env.items() if isinstance(k, str) and isinstance(v, str)}
        self._proc: subprocess.Popen | None = None
        self._error: str | None = None
        try:
            self._proc = subprocess.Popen(
                [python or sys.executable, "-I", "-S", "-c", _CHILD],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=child_env,
            )
        except (OSError, ValueError) as exc:
            self._error = f"cannot start the version probe: {exc}"

    def run(self, jobs_json: str, timeout: float) -> tuple[str, str | None]:
        """(stdout, why it failed or None) for the jobs, as JSON text."""
        proc, self._proc = self._proc, None
        if proc is None:
            return "", self._error or "the version probe was already used"
        try:
            stdout, stderr = proc.communicate(jobs_json, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, _ = proc.communicate()
            return stdout or "", f"timed out after {timeout:g} s"
        except OSError as exc:  # it died before reading its jobs
            proc.kill()
            proc.communicate()
            return "", f"the version probe failed: {exc}"
        failure = _exit_reason(proc.returncode, stderr) if proc.returncode != 0 else None
        return stdout, failure

    def close(self) -> None:
        """End the child unused (nothing to ask)."""
        if self._proc is not None:
            self.run("[]", DEFAULT_TIMEOUT_S)


def _exit_reason(returncode: int, stderr: str) -> str:
    if returncode < 0:
        try:
            import signal

            name = signal.Signals(-returncode).name
        except (ValueError, ImportError):
            name = f"signal {-returncode}"
        return f"the version probe crashed ({name})"
    last = (stderr or "").strip().splitlines()[-1:] or [""]
    return f"the version probe exited with status {returncode} {last[0]}".strip()


def is_possible(os_name: str) -> bool:
    """Version functions are called only for a Linux target probed from Linux."""
    return os_name == "linux" and sys.platform.startswith("linux") and os.name == "posix"
