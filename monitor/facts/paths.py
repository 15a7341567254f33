"""The root-path seam: probes read the machine under a root (default "/").

As psutil's PROCFS_PATH: tests lay a whole fake machine under a tmp dir and point the real
probes at it. Paths stored in the Inventory are the ones the target system sees (root
stripped), so a report reads the same whether it came from a fake tree or the real disk.
"""

from __future__ import annotations

import ntpath
import os

from monitor.record import record


@record
class Root:
    """Maps system paths to files on this disk. Windows paths map "C:\\x" to <root>/C/x."""

    root: str = "/"

    def path(self, system_path: str) -> str:
        """The real location of `system_path` under this root (itself when the root is "/")."""
        if self.root in ("", "/"):
            return system_path
        drive, rest = ntpath.splitdrive(system_path)
        if drive and len(drive) == 2 and drive[1] == ":":
            parts = [part for part in rest.replace("\\", "/").split("/") if part]
            return os.path.join(self.root, drive[0].upper(), *parts)
        return os.path.join(self.root, system_path.lstrip("/"))

    def system(self, real_path: str) -> str:
        """The inverse of `path` for POSIX paths: strip the root prefix."""
        if self.root in ("", "/"):
            return real_path
        root = self.root.rstrip("/")
        if real_path == root:
            return "/"
        if real_path.startswith(root + "/"):
            return real_path[len(root) :]
        return real_path
