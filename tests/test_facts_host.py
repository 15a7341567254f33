"""probe_host over a fake root: OS release, WSL, machine and host name."""

from __future__ import annotations

import os
import platform

from monitor.facts.host import probe_host
from monitor.facts.paths import Root


def lay(root, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def test_linux_release_wsl_and_uname(tmp_path):
    lay(tmp_path, "/etc/os-release", 'NAME="Ubuntu"\nPRETTY_NAME="Ubuntu 24.04.1 LTS"\n')
    lay(tmp_path, "/proc/sys/kernel/osrelease", "5.15.167.4-microsoft-standard-WSL2\n")

    host = probe_host(Root(str(tmp_path)), {"HOME": "/home/ada"}, "linux")

    assert (host.os, host.os_release, host.is_wsl) == ("linux", "Ubuntu 24.04.1 LTS", True)
    assert (host.machine, host.hostname) == (os.uname().machine, os.uname().nodename)
    assert (host.home, host.root) == ("/home/ada", str(tmp_path))


def test_unreadable_or_missing_release_files_leave_fields_empty(tmp_path):
    host = probe_host(Root(str(tmp_path)), {"HOME": "/home/ada"}, "linux")
    assert (host.os_release, host.is_wsl) == ("", False)
    assert probe_host(Root(str(tmp_path)), {"WSL_DISTRO_NAME": "Ubuntu"}, "linux").is_wsl


def test_other_systems_report_their_release_from_platform(tmp_path):
    host = probe_host(Root(str(tmp_path)), {"USERPROFILE": "C:\\Users\\ada"}, "windows")
    assert host.os_release == f"{platform.system()} {platform.release()}".strip()
    assert host.home == "C:\\Users\\ada" and not host.is_wsl
