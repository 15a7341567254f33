"""How the child ended: exit statuses, signals and Windows crash codes (NTSTATUS), in words.

Shared by the runner (LoadTestResult.signal) and the classifier (its findings' evidence).
"""

from __future__ import annotations

import signal
import sys

# The runner's host: on Windows a returncode is read as an NTSTATUS, file names without case.
IS_WINDOWS = sys.platform == "win32"

# Windows exit codes that are crashes (NTSTATUS values).
NTSTATUS_NAMES = {
    0xC0000005: "STATUS_ACCESS_VIOLATION",
    0xC000001D: "STATUS_ILLEGAL_INSTRUCTION",
    0xC0000094: "STATUS_INTEGER_DIVIDE_BY_ZERO",
    0xC00000FD: "STATUS_STACK_OVERFLOW",
    0xC0000135: "STATUS_DLL_NOT_FOUND",
    0xC0000139: "STATUS_ENTRYPOINT_NOT_FOUND",
    0xC000013A: "STATUS_CONTROL_C_EXIT",
    0xC0000374: "STATUS_HEAP_CORRUPTION",
    0xC0000409: "STATUS_STACK_BUFFER_OVERRUN",
}

# POSIX signals by number, as the classifier names them.
_SIGNALS = {
    1: "SIGHUP",
    2: "SIGINT",
    3: "SIGQUIT",
    4: "SIGILL",
    5: "SIGTRAP",
    6: "SIGABRT",
    7: "SIGBUS",
    8: "SIGFPE",
    9: "SIGKILL",
    11: "SIGSEGV",
    13: "SIGPIPE",
    15: "SIGTERM",
}


def signal_name(exit_code: int | None, os_name: str = "") -> str | None:
    """The signal or Windows status an exit status stands for, or None for a plain exit.

    -11 (subprocess: killed by signal 11) and 139 (a shell's 128 + 11) are "SIGSEGV";
    3221225477 and -1073741819 (0xC0000005, unsigned or signed) are "STATUS_ACCESS_VIOLATION".
    128 + N is read as a signal except on Windows.
    """
    if exit_code is None:
        return None
    unsigned = exit_code & 0xFFFFFFFF
    if unsigned in NTSTATUS_NAMES:
        return NTSTATUS_NAMES[unsigned]
    if exit_code < 0:
        return _SIGNALS.get(-exit_code, f"signal {-exit_code}")
    if os_name != "windows" and 128 < exit_code <= 128 + 64:
        return _SIGNALS.get(exit_code - 128)
    return None


def describe_exit(exit_code: int | None, os_name: str = "") -> str:
    """A short human reading of an exit status: "SIGSEGV (signal 11)", "exit status 1"."""
    if exit_code is None:
        return "no exit status"
    name = signal_name(exit_code, os_name)
    unsigned = exit_code & 0xFFFFFFFF
    if name and unsigned in NTSTATUS_NAMES:
        return f"{name} (0x{unsigned:08X})"
    if name and exit_code < 0:
        return f"{name} (signal {-exit_code})" if not name.startswith("signal") else name
    if name:
        return f"exit status {exit_code} ({name})"
    return f"exit status {exit_code}"


def result_signal(returncode: int | None) -> str | None:
    """LoadTestResult.signal: Python's name for a negative returncode ("SIGSEGV"), the
    NTSTATUS name for a Windows crash code, else None."""
    if returncode is None:
        return None
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    if IS_WINDOWS or returncode >= 0xC0000000:
        if returncode in NTSTATUS_NAMES:
            return NTSTATUS_NAMES[returncode]
        if returncode >= 0xC0000000:
            return f"NTSTATUS {returncode:#010x}"
    return None
