"""Which directories to watch, and what an event in one of them means.

Installs land in a few known directories: the parents of CUDA toolkit roots (/usr/local, /opt,
...\\NVIDIA GPU Computing Toolkit\\CUDA), each toolkit's root, bin, lib and include, the
directories holding cuDNN, /etc and /etc/ld.so.conf.d for the loader. Each is watched on its
own, not recursively: a toolkit of 50,000 files costs four OS watches, not thousands.

Paths in targets and Changes are system paths (as the Inventory has them); `real` is where the
directory is on this disk (the Root applied, symlinks followed), which is what events carry.
Planning reads the disk only to follow symlinks and to ask `is_dir` (a parameter); classifying
an event is pure.
"""

from __future__ import annotations

import fnmatch
import ntpath
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from monitor.facts import syspath
from monitor.facts.paths import Root
from monitor.model import Change, ChangeKind, Inventory

# Values of Change.before / after for file events. before is "" or PRESENT, after is "", CREATED
# or MODIFIED: only something that appeared and vanished again coalesces to "" -> "".
PRESENT = "present"
CREATED = "created"
MODIFIED = "modified"

ANY = ("*",)
_TOOLKIT_NAMES = ("cuda", "cuda-[0-9]*")
_CUDNN_FILES = ("cudnn*.h", "libcudnn*")
_LOADER_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.preload", "ld.so.conf.d")
# Editor swap and backup files, package managers' temporary names, bytecode.
_NOISE = re.compile(
    r"""(?x)
    .*(~|\.sw[a-p]|\.swx|\.tmp|\.temp|\.pyc|\.pyo|\.dpkg-[a-z]+|\.rpm(new|save|orig|tmp)|\.part)
    | \.\#.* | \#.*\# | 4913 | __pycache__ | .*;[0-9a-f]+   # emacs, vim's probe, rpm temp
    """,
    re.IGNORECASE,
)
_TRIPLETS = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}
_DRIVER_ROLES = ("nvml", "cuda_driver")


@dataclass(frozen=True)
class WatchTarget:
    """One directory, watched on its own (never recursively), and the entries that matter.

    patterns: entry names (fnmatch) that matter. subject: the subject of their Changes (a toolkit
    root for the files inside it); "" makes each entry its own subject. tree: the real path of
    the install this directory belongs to: a change here may be the start of a reinstall or an
    uninstall, so the whole tree is watched until it is quiet.
    """

    path: str
    real: str
    kind: ChangeKind
    why: str
    patterns: tuple[str, ...] = ANY
    subject: str = ""
    tree: str = ""


@dataclass(frozen=True)
class _Want:
    path: str
    kind: ChangeKind
    why: str
    patterns: tuple[str, ...] = ANY
    subject: str = ""
    catch_creation: bool = False  # when missing, watch the nearest ancestor for its creation
    tree: str = ""


def watch_targets(
    inventory: Inventory,
    root: Root,
    os_name: str,
    *,
    is_dir: Callable[[str], bool] = os.path.isdir,
) -> list[WatchTarget]:
    """The directories to watch for this inventory: existing ones only, deduplicated."""
    wants = _toolkit_wants(inventory, os_name)
    wants += _cudnn_wants(inventory, os_name)
    wants += _library_wants(inventory, os_name)
    if os_name == "linux":
        wants += _loader_wants()
    return _merge(_place(want, root, os_name, is_dir) for want in wants)


def is_noise(name: str) -> bool:
    """Temporary and editor files: never a change of the stack by themselves."""
    return _NOISE.fullmatch(name) is not None


class TargetIndex:
    """The targets by directory, for classifying a storm of events cheaply."""

    def __init__(self, targets: Iterable[WatchTarget], os_name: str = "linux") -> None:
        self.os_name = os_name
        by_dir: dict[str, list[WatchTarget]] = {}
        for target in targets:
            by_dir.setdefault(target.real, []).append(target)
        # Specific patterns first: libcudnn* in a toolkit's lib64 is cuDNN, the rest the toolkit.
        self._by_dir = {
            real: tuple(sorted(found, key=lambda t: t.patterns == ANY))
            for real, found in by_dir.items()
        }
        self._tree = {
            real: next((t.tree for t in found if t.tree), "") for real, found in by_dir.items()
        }

    @property
    def directories(self) -> list[str]:
        return list(self._by_dir)

    def classify(self, path: str, *, what: str, at: str = "") -> Change | None:
        """The Change an event on `path` (a real path) means, or None for noise.

        what: "created", "deleted" or "modified" (a write, or a file renamed over it).
        """
        found = self.match(path, what=what, at=at)
        return found[0] if found else None

    def match(self, path: str, *, what: str, at: str = "") -> tuple[Change, str] | None:
        """classify, and the tree (real path) the event's directory belongs to, or ""."""
        parent, name = os.path.split(path)
        if is_noise(name):
            return None
        for target in self._by_dir.get(parent, ()):
            if self._matches(target, name):
                return _entry_change(target, name, what, at, self.os_name), self._tree[parent]
        if what == "deleted" and path in self._by_dir:
            return _self_vanished(self._by_dir[path][-1], at), self._tree[path]
        return None

    def _matches(self, target: WatchTarget, name: str) -> bool:
        if target.patterns == ANY:
            return True
        if self.os_name == "windows":
            name = name.lower()
            return any(fnmatch.fnmatchcase(name, p.lower()) for p in target.patterns)
        return any(fnmatch.fnmatchcase(name, p) for p in target.patterns)


def classify(
    path: str, targets: Sequence[WatchTarget], *, what: str, at: str = "", os_name: str = "linux"
) -> Change | None:
    """TargetIndex(targets).classify(...), for one-off use."""
    return TargetIndex(targets, os_name).classify(path, what=what, at=at)


def _entry_change(target: WatchTarget, name: str, what: str, at: str, os_name: str) -> Change:
    if target.subject:
        return Change(target.kind, target.subject, PRESENT, MODIFIED, at)
    subject = syspath.join(os_name, target.path, name)
    before, after = {
        "created": ("", CREATED),
        "deleted": (PRESENT, ""),
    }.get(what, (PRESENT, MODIFIED))
    return Change(target.kind, subject, before, after, at)


def _self_vanished(target: WatchTarget, at: str) -> Change:
    """The watched directory itself went away."""
    if target.subject and target.subject != target.path:
        return Change(target.kind, target.subject, PRESENT, MODIFIED, at)
    return Change(target.kind, target.path, PRESENT, "", at)


# --------------------------------------------------------------------------- what to watch


def _toolkit_wants(inventory: Inventory, os_name: str) -> list[_Want]:
    wants = [
        _Want(parent, ChangeKind.TOOLKIT, why, patterns, catch_creation=True)
        for parent, patterns, why in _toolkit_parents(inventory, os_name)
    ]
    if os_name == "linux":
        links = "update-alternatives links"
        wants.append(_Want("/etc/alternatives", ChangeKind.TOOLKIT, links, ("cuda", "cuda-*")))
    windows = os_name == "windows"
    for toolkit in inventory.toolkits:
        if not syspath.is_absolute(toolkit.root, os_name):
            continue
        root = toolkit.root
        wants.append(
            _Want(
                syspath.dirname(os_name, root),
                ChangeKind.TOOLKIT,
                "holds a CUDA toolkit root",
                (_basename(os_name, root),),
            )
        )
        subs = ("bin", "lib\\x64", "include") if windows else ("bin", "lib64", "lib", "include")
        # A conda toolkit's root is a whole environment: far too big to watch as one tree.
        conda = "conda" in toolkit.origin
        tree = "" if conda else root
        if conda:
            subs += ("Library\\bin", "conda-meta") if windows else ("conda-meta",)
        wants.append(_Want(root, ChangeKind.TOOLKIT, "CUDA toolkit root", ANY, root, tree=tree))
        for sub in subs:
            path = syspath.join(os_name, root, sub)
            if sub != "conda-meta":
                patterns = ("cudnn*",) if windows else _CUDNN_FILES
                wants.append(_Want(path, ChangeKind.CUDNN, "cuDNN copied into a toolkit", patterns))
            why = f"CUDA toolkit {sub}"
            wants.append(_Want(path, ChangeKind.TOOLKIT, why, ANY, root, tree=tree))
    return wants


def _toolkit_parents(inventory: Inventory, os_name: str) -> list[tuple[str, tuple[str, ...], str]]:
    why = "CUDA toolkits are installed here"
    if os_name == "windows":
        base = syspath.join(os_name, _program_files(inventory), "NVIDIA GPU Computing Toolkit")
        return [(syspath.join(os_name, base, "CUDA"), ("v[0-9]*",), why)]
    parents = [("/usr/local", _TOOLKIT_NAMES, why), ("/opt", _TOOLKIT_NAMES, why)]
    if os_name == "darwin":
        parents.append(("/Developer/NVIDIA", ("CUDA-[0-9]*",), why))
    return parents


def _cudnn_wants(inventory: Inventory, os_name: str) -> list[_Want]:
    kind = ChangeKind.CUDNN
    wants = []
    if os_name == "windows":
        base = syspath.join(os_name, _program_files(inventory), "NVIDIA", "CUDNN")
        wants.append(_Want(base, kind, "cuDNN installers put v9.x here", ("v[0-9]*",), "", True))
    elif os_name == "linux":
        triplet = _TRIPLETS.get(inventory.host.machine, "x86_64-linux-gnu")
        places = ("/usr/include", f"/usr/include/{triplet}", f"/usr/lib/{triplet}", "/usr/lib64")
        for path in places:
            wants.append(_Want(path, kind, "distribution cuDNN packages", _CUDNN_FILES))
        wants.append(_Want("/etc/alternatives", kind, "update-alternatives links", ("*cudnn*",)))
    for install in inventory.cudnn:
        if not syspath.is_absolute(install.location, os_name):
            continue
        if install.source == "pip":
            lib = syspath.join(os_name, install.location, "bin" if os_name == "windows" else "lib")
            wants.append(_Want(lib, kind, "cuDNN wheel libraries", ("*cudnn*",)))
        else:
            directory = syspath.dirname(os_name, install.location)
            wants.append(_Want(directory, kind, f"holds cuDNN ({install.source})", ("*cudnn*",)))
    return wants


def _library_wants(inventory: Inventory, os_name: str) -> list[_Want]:
    """The directories of the libraries the loader resolved (LD_LIBRARY_PATH dirs, PATH dirs)."""
    site = [sp for python in inventory.pythons for sp in python.site_packages]
    wants = []
    for resolution in inventory.libraries:
        found = resolution.resolved
        if found is None or resolution.role in _DRIVER_ROLES:
            continue
        if not syspath.is_absolute(found.path, os_name) or _under_any(found.path, site, os_name):
            continue
        kind = ChangeKind.CUDNN if resolution.role == "cudnn" else ChangeKind.TOOLKIT
        names = tuple(dict.fromkeys((_basename(os_name, found.path), resolution.wanted)))
        why = f"the loader picks {resolution.wanted} here"
        wants.append(_Want(syspath.dirname(os_name, found.path), kind, why, names))
    return wants


def _loader_wants() -> list[_Want]:
    return [
        _Want("/etc", ChangeKind.LOADER, "the loader's cache and configuration", _LOADER_FILES),
        _Want("/etc/ld.so.conf.d", ChangeKind.LOADER, "loader search paths", ANY, "", True),
    ]


def _place(
    want: _Want, root: Root, os_name: str, is_dir: Callable[[str], bool]
) -> WatchTarget | None:
    """`want` at its real directory; for a missing place worth waiting for, its nearest
    existing ancestor watched for the missing name; None when there is nothing to watch."""
    resolved, error = syspath.resolve(root, want.path, os_name)
    real = _real(root, resolved)
    if error is None and is_dir(real):
        tree = _real(root, syspath.resolve(root, want.tree, os_name)[0]) if want.tree else ""
        return WatchTarget(resolved, real, want.kind, want.why, want.patterns, want.subject, tree)
    if not want.catch_creation:
        return None
    child = want.path
    parent = syspath.dirname(os_name, child)
    while parent != child:
        resolved, error = syspath.resolve(root, parent, os_name)
        real = _real(root, resolved)
        if error is None and is_dir(real):
            name = _basename(os_name, child)
            why = f"{want.why} ({name} does not exist yet)"
            return WatchTarget(resolved, real, want.kind, why, (name,))
        child, parent = parent, syspath.dirname(os_name, parent)
    return None


def _merge(targets: Iterable[WatchTarget | None]) -> list[WatchTarget]:
    """One target per (directory, kind, subject), patterns united, in first-seen order."""
    merged: dict[tuple[str, ChangeKind, str], WatchTarget] = {}
    for target in targets:
        if target is None:
            continue
        key = (target.real, target.kind, target.subject)
        old = merged.get(key)
        if old is None:
            merged[key] = target
            continue
        patterns = ANY if ANY in (old.patterns, target.patterns) else old.patterns + target.patterns
        why = old.why if target.why in old.why else f"{old.why}; {target.why}"
        merged[key] = replace(old, why=why, patterns=tuple(dict.fromkeys(patterns)))
    return list(merged.values())


def _real(root: Root, system_path: str) -> str:
    """Where the directory is on this disk, spelt as event paths spell it (no trailing "/")."""
    return os.path.normpath(root.path(system_path))


def _program_files(inventory: Inventory) -> str:
    return inventory.environment.get("ProgramFiles") or "C:\\Program Files"


def _basename(os_name: str, path: str) -> str:
    return (ntpath if os_name == "windows" else posixpath).basename(path)


def _under_any(path: str, dirs: Sequence[str], os_name: str) -> bool:
    if os_name == "windows":
        path, dirs = path.lower(), [d.lower() for d in dirs]
    sep = "\\" if os_name == "windows" else "/"
    return any(path.startswith(d.rstrip(sep) + sep) for d in dirs if d)
