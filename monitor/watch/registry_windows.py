"""Windows: the registry keys a new logon's environment comes from, and a wait for a change.

Thin on purpose: it cannot run on the Linux CI. What a logon makes of the values (%VAR%
expansion, the user's Path after the system's) is login_env.windows_login_environment, tested
with values fed in. winreg and the Win32 DLLs are loaded inside functions, so Linux imports
this module fine.

The broadcast WM_SETTINGCHANGE ("Environment") is not listened to: every writer (setx, the
System Properties dialog, installers) changes these keys, which RegNotifyChangeKeyValue
reports even when the writer forgets to broadcast; a broadcast alone changes nothing a new
logon sees; and receiving it would need a hidden window and a message-loop thread.
"""

from __future__ import annotations

import os
from typing import Any

from monitor.watch.login_env import LoginEnvironment, RegistryValues, windows_login_environment

SYSTEM_KEY = r"SYSTEM\CurrentControlSet\Control\Session Manager\Environment"
USER_KEY = "Environment"
# What a logon has before the two keys are applied; they are the same in this process.
BASE_NAMES = (
    "SystemRoot",
    "SystemDrive",
    "windir",
    "ProgramFiles",
    "ProgramFiles(x86)",
    "ProgramW6432",
    "CommonProgramFiles",
    "CommonProgramFiles(x86)",
    "ProgramData",
    "ALLUSERSPROFILE",
    "PUBLIC",
    "USERPROFILE",
    "USERNAME",
    "USERDOMAIN",
    "COMPUTERNAME",
    "HOMEDRIVE",
    "HOMEPATH",
    "APPDATA",
    "LOCALAPPDATA",
)
_KEY_NOTIFY = 0x0010
_REG_NOTIFY_CHANGE_NAME = 0x1
_REG_NOTIFY_CHANGE_LAST_SET = 0x4
_WAIT_OBJECT_0 = 0


def read_logon_environment() -> LoginEnvironment:
    """The watched variables of this user's next logon; unreadable keys are errors."""
    import winreg

    errors: list[tuple[str, str]] = []
    keys: list[RegistryValues] = []
    for hive, name, path in (
        (winreg.HKEY_LOCAL_MACHINE, "HKLM", SYSTEM_KEY),
        (winreg.HKEY_CURRENT_USER, "HKCU", USER_KEY),
    ):
        values, error = read_key(hive, path)
        keys.append(values)
        if error:
            errors.append((f"{name}\\{path}", error))
    base = {name: os.environ[name] for name in BASE_NAMES if name in os.environ}
    return LoginEnvironment(windows_login_environment(keys[0], keys[1], base), (), tuple(errors))


def read_key(hive: Any, path: str) -> tuple[dict[str, tuple[str, bool]], str | None]:
    """(name -> (value, expandable)) of a key's string values; an absent key is empty."""
    import winreg

    values: dict[str, tuple[str, bool]] = {}
    try:
        with winreg.OpenKey(hive, path, 0, winreg.KEY_READ) as key:
            index = 0
            while True:
                try:
                    name, data, kind = winreg.EnumValue(key, index)
                except OSError:  # ERROR_NO_MORE_ITEMS
                    break
                index += 1
                if kind in (winreg.REG_SZ, winreg.REG_EXPAND_SZ) and isinstance(data, str):
                    values[name] = (data, kind == winreg.REG_EXPAND_SZ)
    except FileNotFoundError:
        return {}, None
    except OSError as exc:
        return values, f"cannot read: {exc.strerror or exc}"
    return values, None


class RegistryChangeWaiter:
    """Waits until either key changes, wake() is called, or the timeout passes.

    RegNotifyChangeKeyValue fires once per registration, and a registration belongs to the
    thread that made it: each key is (re-)registered inside wait(), on the watcher's thread,
    after it fired. A key that cannot be opened is left to the timer.
    """

    def __init__(self) -> None:
        import ctypes
        import winreg
        from ctypes import wintypes

        self._ctypes = ctypes
        self._handle_type = wintypes.HANDLE
        self._kernel32 = _kernel32(ctypes, wintypes)
        self._notify = _reg_notify(ctypes, wintypes)
        self._wake_event = self._new_event(manual_reset=True)
        self._keys: list[Any] = []
        self._events: list[int] = []
        for hive, path in (
            (winreg.HKEY_LOCAL_MACHINE, SYSTEM_KEY),
            (winreg.HKEY_CURRENT_USER, USER_KEY),
        ):
            try:
                key = winreg.OpenKey(hive, path, 0, _KEY_NOTIFY)
            except OSError:
                continue
            self._keys.append(key)
            self._events.append(self._new_event(manual_reset=False))
        self._armed = [False] * len(self._keys)

    def wait(self, timeout_s: float) -> None:
        for index, key in enumerate(self._keys):
            if not self._armed[index]:
                filter_ = _REG_NOTIFY_CHANGE_NAME | _REG_NOTIFY_CHANGE_LAST_SET
                status = self._notify(key.handle, False, filter_, self._events[index], True)
                self._armed[index] = status == 0
        handles = [self._wake_event, *self._events]
        array = (self._handle_type * len(handles))(*handles)
        milliseconds = max(0, int(timeout_s * 1000))
        fired = self._kernel32.WaitForMultipleObjects(len(handles), array, False, milliseconds)
        key_index = fired - _WAIT_OBJECT_0 - 1
        if 0 <= key_index < len(self._keys):
            self._armed[key_index] = False

    def wake(self) -> None:
        self._kernel32.SetEvent(self._wake_event)

    def close(self) -> None:
        for key in self._keys:
            key.Close()
        for event in (self._wake_event, *self._events):
            self._kernel32.CloseHandle(event)
        self._keys, self._events = [], []

    def _new_event(self, manual_reset: bool) -> int:
        event = self._kernel32.CreateEventW(None, manual_reset, False, None)
        if not event:
            raise self._ctypes.WinError(self._ctypes.get_last_error())
        return event


def _kernel32(ctypes: Any, wintypes: Any) -> Any:
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.CreateEventW.argtypes = [
        ctypes.c_void_p,
        wintypes.BOOL,
        wintypes.BOOL,
        wintypes.LPCWSTR,
    ]
    kernel32.CreateEventW.restype = wintypes.HANDLE
    kernel32.SetEvent.argtypes = [wintypes.HANDLE]
    kernel32.SetEvent.restype = wintypes.BOOL
    kernel32.CloseHandle.argtypes = [wintypes.HANDLE]
    kernel32.CloseHandle.restype = wintypes.BOOL
    kernel32.WaitForMultipleObjects.argtypes = [
        wintypes.DWORD,
        ctypes.POINTER(wintypes.HANDLE),
        wintypes.BOOL,
        wintypes.DWORD,
    ]
    kernel32.WaitForMultipleObjects.restype = wintypes.DWORD
    return kernel32


def _reg_notify(ctypes: Any, wintypes: Any) -> Any:
    notify = ctypes.WinDLL("advapi32", use_last_error=True).RegNotifyChangeKeyValue
    notify.argtypes = [wintypes.HKEY, wintypes.BOOL, wintypes.DWORD, wintypes.HANDLE, wintypes.BOOL]
    notify.restype = wintypes.LONG
    return notify
