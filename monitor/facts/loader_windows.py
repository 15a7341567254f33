"""Windows: which DLL the loader would load for native TensorFlow (<= 2.10 for CUDA).

* CUDA, cuDNN and driver DLLs: TF calls LoadLibrary(name) with no directory, so the standard
  search order applies (SafeDllSearchMode): the application directory (that of python.exe; of
  the base interpreter for a venv, whose Scripts\\python.exe only launches it), System32
  (SysWOW64 for a 32-bit Python), the Windows directory, the current directory (unknown here,
  not searched), then PATH in order.
* The VC++ runtime DLLs (role msvc_runtime) are static imports of
  _pywrap_tensorflow_internal.pyd. Python >= 3.8 loads extension modules with
  LOAD_LIBRARY_SEARCH_DEFAULT_DIRS | LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR: the .pyd's own
  directory, the application directory, System32 and os.add_dll_directory() directories, NOT
  PATH. A DLL found only on PATH gives `on_path_only` and no `resolved`.

Names are matched case-insensitively. A file that is not a PE image, or one for the wrong
machine (a 32-bit DLL for a 64-bit Python), makes LoadLibrary fail with error 193
(ERROR_BAD_EXE_FORMAT): it is reported as resolved with `error` set. No DLL is loaded and no
child process runs; versions are not read.
"""

from __future__ import annotations

import ntpath
import os
import re
import struct
from collections.abc import Mapping, Sequence

from monitor import compat
from monitor.facts import syspath
from monitor.facts.paths import Root
from monitor.model import CudaToolkit, LibraryFile, LibraryResolution, PythonEnv
from monitor.versions import parse_version

DRIVER_ROLES = ("cuda_driver", "nvml")
_PE_MACHINES = {0x8664: "x64", 0x14C: "x86 (32-bit)", 0xAA64: "ARM64", 0x1C4: "ARM (32-bit)"}
_OTHER_MAJOR = re.compile(r"(?P<stem>.+64_)(?P<major>\d+)\.dll", re.IGNORECASE)
_DRIVE_ABSOLUTE = re.compile(r"[A-Za-z]:[\\/]")


def probe_windows(
    root: Root,
    env: Mapping[str, str],
    pythons: Sequence[PythonEnv],
    toolkits: Sequence[CudaToolkit] = (),
) -> tuple[LibraryResolution, ...]:
    """Resolutions for every interpreter with TF (CUDA DLLs for CUDA builds, the VC++ runtime
    for all); the driver DLLs once with python="" when no CUDA build is installed."""
    from monitor.facts.loader import cuda_version_of, cudnn_version_of

    probe = _WindowsProbe(root, env, toolkits)
    results: list[LibraryResolution] = []
    any_cuda = False
    for python in pythons:
        tf = python.tensorflow
        if tf is None:
            continue
        if tf.is_cuda_build:
            any_cuda = True
            names = compat.required_libraries(cuda_version_of(tf), cudnn_version_of(tf), "windows")
        else:
            names = tuple(
                n
                for n in compat.required_libraries(None, None, "windows")
                if n.role == "msvc_runtime"
            )
        results.extend(probe.resolve(python, name) for name in names)
    if not any_cuda:
        names = tuple(
            n for n in compat.required_libraries(None, None, "windows") if n.role in DRIVER_ROLES
        )
        results.extend(probe.resolve(None, name) for name in names)
    return tuple(results)


def pe_verdict(path: str, bits: int) -> str | None:
    """None when `path` is a PE image for a `bits`-bit process, else why LoadLibrary fails."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
            if len(head) < 64 or head[:2] != b"MZ":
                return "not a PE image (LoadLibrary fails with error 193)"
            (offset,) = struct.unpack_from("<I", head, 0x3C)
            handle.seek(offset)
            signature = handle.read(6)
    except IsADirectoryError:
        return "is a directory, not a DLL"
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if len(signature) < 6 or signature[:4] != b"PE\0\0":
        return "not a PE image (LoadLibrary fails with error 193)"
    (machine,) = struct.unpack_from("<H", signature, 4)
    wanted = (0x8664, 0xAA64) if bits == 64 else (0x14C,)
    if machine not in wanted:
        label = _PE_MACHINES.get(machine, f"machine 0x{machine:x}")
        return f"wrong machine: {label} DLL (LoadLibrary fails with error 193)"
    return None


class _WindowsProbe:
    def __init__(self, root: Root, env: Mapping[str, str], toolkits: Sequence[CudaToolkit]):
        self.root = root
        self.env = env
        self.toolkits = toolkits
        self._dirs: dict[str, str | None] = {}
        self._listings: dict[str, dict[str, str]] = {}
        self.path_dirs, self.path_notes = self._path_dirs()
        system_root = (
            syspath.env_get(env, "SystemRoot", "windows")
            or syspath.env_get(env, "windir", "windows")
            or "C:\\Windows"
        )
        self.windows_dir = ntpath.normpath(system_root.strip().strip('"'))

    # ------------------------------------------------------------------ file system

    def real(self, system_path: str) -> str:
        if os.name == "nt" and self.root.root in ("", "/"):
            return system_path
        return self.root.path(system_path)

    def directory(self, system_dir: str) -> str | None:
        """The real directory for a system directory, matched case-insensitively."""
        key = system_dir.lower()
        if key not in self._dirs:
            self._dirs[key] = self._find_dir(system_dir)
        return self._dirs[key]

    def _find_dir(self, system_dir: str) -> str | None:
        real = self.real(system_dir)
        if os.path.isdir(real):
            return real
        drive, rest = ntpath.splitdrive(system_dir)
        if not drive:
            return None
        current = self.real(drive + "\\")
        if not os.path.isdir(current):
            return None
        for part in [p for p in re.split(r"[\\/]", rest) if p and p != "."]:
            if part == "..":
                current = os.path.dirname(current)
                continue
            try:
                names = os.listdir(current)
            except OSError:
                return None
            match = next((n for n in names if n.lower() == part.lower()), None)
            if match is None or not os.path.isdir(os.path.join(current, match)):
                return None
            current = os.path.join(current, match)
        return current

    def listing(self, system_dir: str) -> dict[str, str]:
        """lower-case name -> real name, for one directory; {} when absent or unreadable."""
        real = self.directory(system_dir)
        if real is None:
            return {}
        if real not in self._listings:
            try:
                names = os.listdir(real)
            except OSError:
                names = []
            self._listings[real] = {name.lower(): name for name in sorted(names)}
        return self._listings[real]

    # ------------------------------------------------------------------ directories

    def _path_dirs(self) -> tuple[list[str], list[str]]:
        dirs, notes = [], []
        for raw in (syspath.env_get(self.env, "PATH", "windows") or "").split(";"):
            entry = raw.strip().strip('"').strip()
            if not entry:
                continue
            if "%" in entry:
                notes.append(
                    f"PATH entry {entry!r} holds an unexpanded variable; the loader "
                    "does not expand it"
                )
                continue
            if not _DRIVE_ABSOLUTE.match(entry):
                notes.append(f"PATH entry {entry!r} is not an absolute path and was not searched")
                continue
            dirs.append(ntpath.normpath(entry))
        return dirs, notes

    def system32(self, python: PythonEnv | None) -> str:
        sub = "SysWOW64" if python is not None and python.bits == 32 else "System32"
        return ntpath.join(self.windows_dir, sub)

    def app_dirs(self, python: PythonEnv | None) -> list[str]:
        """python.exe's directory, and the base interpreter's for a venv (pyvenv.cfg home)."""
        if python is None or not _DRIVE_ABSOLUTE.match(python.executable):
            return []
        exe_dir = ntpath.dirname(python.executable)
        dirs = [exe_dir]
        for cfg_dir in (ntpath.dirname(exe_dir), exe_dir):
            home = self._venv_home(ntpath.join(cfg_dir, "pyvenv.cfg"))
            if home:
                dirs.insert(0, home)
                break
        return _unique(dirs)

    def _venv_home(self, system_path: str) -> str | None:
        directory, name = ntpath.split(system_path)
        real_dir = self.directory(directory)
        actual = self.listing(directory).get(name.lower()) if real_dir else None
        if actual is None:
            return None
        try:
            with open(os.path.join(real_dir, actual), "rb") as handle:
                text = handle.read(1 << 16).decode("utf-8", "replace")
        except OSError:
            return None
        for line in text.splitlines():
            key, _, value = line.partition("=")
            value = value.strip()
            if key.strip().lower() == "home" and _DRIVE_ABSOLUTE.match(value):
                return ntpath.normpath(value)
        return None

    def pyd_dir(self, python: PythonEnv | None) -> list[str]:
        """The directory of _pywrap_tensorflow_internal.pyd (the DLL load dir of its imports)."""
        if python is None or python.tensorflow is None:
            return []
        base = python.tensorflow.package_dir
        if not _DRIVE_ABSOLUTE.match(base):
            return []
        options = [
            ntpath.join(base, "python"),
            ntpath.join(ntpath.dirname(base), "tensorflow_core", "python"),
        ]
        for option in options:
            if "_pywrap_tensorflow_internal.pyd" in self.listing(option):
                return [ntpath.normpath(option)]
        return [ntpath.normpath(options[0])]

    def standard_order(self, python: PythonEnv | None) -> list[tuple[str, str]]:
        """LoadLibrary(name): application dir, System32, Windows dir, PATH."""
        pairs = [("application dir", d) for d in self.app_dirs(python)]
        pairs += [("System32", self.system32(python)), ("Windows dir", self.windows_dir)]
        pairs += [("PATH", d) for d in self.path_dirs]
        return _dedupe(pairs)

    def extension_order(self, python: PythonEnv | None) -> list[tuple[str, str]]:
        """A Python >= 3.8 extension module's imports: its dir, the app dir, System32."""
        pairs = [("DLL load dir", d) for d in self.pyd_dir(python)]
        pairs += [("application dir", d) for d in self.app_dirs(python)]
        pairs += [("System32", self.system32(python))]
        return _dedupe(pairs)

    def extra_dirs(self, python: PythonEnv | None) -> list[tuple[str, str]]:
        pairs = []
        for key, value in sorted(self.env.items()):
            upper = key.upper()
            if (upper == "CUDA_PATH" or upper.startswith("CUDA_PATH_V")) and value:
                value = value.strip().strip('"')
                if _DRIVE_ABSOLUTE.match(value):
                    pairs.append(("CUDA_PATH", ntpath.join(value, "bin")))
        for toolkit in self.toolkits:
            if _DRIVE_ABSOLUTE.match(toolkit.root):
                pairs.append(("toolkit", ntpath.join(toolkit.root, "bin")))
        conda = syspath.env_get(self.env, "CONDA_PREFIX", "windows")
        if conda and _DRIVE_ABSOLUTE.match(conda):
            pairs.append(("conda", ntpath.join(conda, "Library", "bin")))
        if python is not None:
            for site in python.site_packages:
                if not _DRIVE_ABSOLUTE.match(site):
                    continue
                nvidia = ntpath.join(site, "nvidia")
                for name in self.listing(nvidia).values():
                    pairs.append(("pip", ntpath.join(nvidia, name, "bin")))
        program_files = syspath.env_get(self.env, "ProgramFiles", "windows") or "C:\\Program Files"
        pairs.append(("driver", ntpath.join(program_files, "NVIDIA Corporation", "NVSMI")))
        return pairs

    # ------------------------------------------------------------------ resolving

    def look(self, system_dir: str, name: str, via: str, bits: int) -> LibraryFile | None:
        actual = self.listing(system_dir).get(name.lower())
        if actual is None:
            return None
        real_dir = self.directory(system_dir)
        assert real_dir is not None
        error = pe_verdict(os.path.join(real_dir, actual), bits)
        return LibraryFile(path=ntpath.join(system_dir, actual), via=via, error=error)

    def resolve(self, python: PythonEnv | None, name: compat.LibraryName) -> LibraryResolution:
        wanted = name.file_name
        bits = python.bits if python is not None and python.bits in (32, 64) else 64
        notes = list(self.path_notes)
        extension = name.role == "msvc_runtime" and _loads_like_38(python)
        order = self.extension_order(python) if extension else self.standard_order(python)
        searched = [f"{via}: {d}" for via, d in order]
        resolved = next(
            (f for f in (self.look(d, wanted, via, bits) for via, d in order) if f), None
        )
        on_path_only = None
        if extension and resolved is None:
            on_path_only = next(
                (f for f in (self.look(d, wanted, "PATH", bits) for d in self.path_dirs) if f),
                None,
            )
            if on_path_only is not None:
                notes.append(
                    "found only on PATH, which Python >= 3.8 does not search for the "
                    "DLLs an extension module imports"
                )
        pairs = list(order) + [("PATH", d) for d in self.path_dirs]
        pairs += self.standard_order(python) + self.extra_dirs(python)
        seen = {f.path.lower() for f in (resolved, on_path_only) if f is not None}
        candidates = []
        for via, directory in _dedupe(pairs):
            listing = self.listing(directory)
            if not listing:
                continue
            names = [wanted] if wanted.lower() in listing else []
            names += _other_majors(listing, wanted, name.role)
            for file_name in names:
                found = self.look(directory, file_name, via, bits)
                if found is None or found.path.lower() in seen:
                    continue
                seen.add(found.path.lower())
                candidates.append(found)
        return LibraryResolution(
            role=name.role,
            wanted=wanted,
            python=python.executable if python is not None else "",
            required=name.required,
            resolved=resolved,
            candidates=tuple(candidates),
            on_path_only=on_path_only,
            note="; ".join(notes),
            searched=tuple(searched),
        )


def _loads_like_38(python: PythonEnv | None) -> bool:
    """Python >= 3.8 (or unknown) searches an extension's imports without PATH."""
    if python is None:
        return True
    version = parse_version(python.version)
    return version is None or version[:2] >= (3, 8)


def _other_majors(listing: Mapping[str, str], wanted: str, role: str) -> list[str]:
    """Same DLL, another version suffix (cudnn64_7.dll when cudnn64_8.dll is wanted)."""
    if role in ("msvc_runtime", *DRIVER_ROLES):
        return []
    match = _OTHER_MAJOR.fullmatch(wanted)
    if not match:
        return []
    stem, major = match.group("stem").lower(), match.group("major")
    out = []
    for lower, actual in listing.items():
        other = _OTHER_MAJOR.fullmatch(lower)
        if other and other.group("stem") == stem and other.group("major") != major:
            out.append(actual)
    return out


def _unique(items: Sequence[str]) -> list[str]:
    seen, out = set(), []
    for item in items:
        if item.lower() not in seen:
            seen.add(item.lower())
            out.append(item)
    return out


def _dedupe(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    seen, out = set(), []
    for via, directory in pairs:
        key = directory.lower()
        if key not in seen:
            seen.add(key)
            out.append((via, directory))
    return out
