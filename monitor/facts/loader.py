"""Which file the OS loader would load for each library TensorFlow needs, and why.

For every watched interpreter with a CUDA build of TensorFlow, each library of
`compat.required_libraries` is looked up the way the loader would look it up when TF asks for
it by name, and every other copy on the machine is listed as a candidate (shadowed copies,
other majors), each with its soname and version. Nothing is imported or loaded in this
process; only the version functions run, in one short child process (loader_versions).

Linux (glibc dlopen from TF's own shared object, elf/dl-load.c _dl_map_object):
  1. the caller's DT_RPATH, only when it has no DT_RUNPATH (then also the executable's RPATH)
  2. LD_LIBRARY_PATH (":" or ";" separated; empty and relative entries mean the caller's cwd)
  3. the caller's DT_RUNPATH (TensorflowBuild.runpath, $ORIGIN already expanded)
  4. /etc/ld.so.cache (ldcache)
  5. the default directories (/lib, /usr/lib; multiarch on Debian, lib64 on Fedora)
A file of the wrong ELF class or machine is skipped; a file that is no ELF at all stops the
search (the dlopen fails). Libraries that are not dlopened by TF itself but are dependencies of
another library (libnvJitLink of libcusparse, the cuDNN sub-libraries of libcudnn) are also
searched on that library's own RUNPATH, and in the interpreter's site-packages/nvidia/*/lib as
a last resort (via "pip").

Windows: see loader_windows. Paths are system paths: the Root maps them to this disk.
"""

from __future__ import annotations

import errno
import functools
import os
import posixpath
import re
import stat
from collections.abc import Iterable, Mapping, Sequence

from monitor import compat
from monitor.facts import elf, ldcache, loader_elf, loader_versions, syspath
from monitor.facts.paths import Root
from monitor.model import CudaToolkit, LibraryFile, LibraryResolution, PythonEnv, TensorflowBuild
from monitor.record import record, replace

DRIVER_ROLES = ("cuda_driver", "nvml")
_MAX_CONF_FILES = 200
# A dependency found through its parent library's own RUNPATH (and, as a last resort, in the
# interpreter's pip wheel directories).
_PARENT_ROLES = {"nvjitlink": ("cusparse", "cusolver"), "cublasLt": ("cublas",)}
_PIP_FALLBACK_ROLES = ("nvjitlink", "curand")
_SONAME_FORM = re.compile(r"(?P<base>.+?\.so)\.(?P<suffix>\d+(?:\.\d+)*)")
_MAIN_CUDNN = re.compile(r"libcudnn\.so(\.\d+)*")
_TRIPLETS = {
    "x86_64": "x86_64-linux-gnu",
    "amd64": "x86_64-linux-gnu",
    "aarch64": "aarch64-linux-gnu",
    "arm64": "aarch64-linux-gnu",
    "ppc64le": "powerpc64le-linux-gnu",
    "s390x": "s390x-linux-gnu",
    "riscv64": "riscv64-linux-gnu",
}
_CUDA_TARGETS = {"x86_64": "x86_64-linux", "aarch64": "sbsa-linux", "ppc64le": "ppc64le-linux"}


# --------------------------------------------------------------------------- versions of TF


def cuda_version_of(build: TensorflowBuild | None) -> str | None:
    """The CUDA version a TF build was made for, as a plain version ("64_112" -> "11.2")."""
    if build is None:
        return None
    info = dict(build.build_info)
    raw = build.cuda_version or info.get("cuda_version") or info.get("cuda_version_number")
    return compat.build_version(raw)


def cudnn_version_of(build: TensorflowBuild | None) -> str | None:
    """The cuDNN version a TF build was made for, as a plain version ("64_8" -> "8")."""
    if build is None:
        return None
    info = dict(build.build_info)
    raw = build.cudnn_version or info.get("cudnn_version") or info.get("cudnn_version_number")
    return compat.build_version(raw)


# --------------------------------------------------------------------------- entry point


def probe_libraries(
    root: Root,
    env: Mapping[str, str],
    os_name: str,
    pythons: Sequence[PythonEnv],
    toolkits: Sequence[CudaToolkit] = (),
    *,
    machine: str | None = None,
    version_functions: bool = True,
    timeout: float = loader_versions.DEFAULT_TIMEOUT_S,
    version_child: loader_versions.VersionChild | None = None,
) -> tuple[LibraryResolution, ...]:
    """Resolve every library each CUDA build of TF needs, per interpreter.

    Without any CUDA build, only the driver's own libraries are resolved, once, with
    python="". `machine` defaults to this host's (os.uname().machine); `version_functions`
    False skips the child process (versions then come from file names and sonames only).
    version_child: that child, started early by the caller (who closes it if unused).
    """
    env = {k: v for k, v in env.items() if isinstance(k, str) and isinstance(v, str)}
    if os_name == "windows":
        from monitor.facts import loader_windows

        return loader_windows.probe_windows(root, env, pythons, toolkits)
    if os_name != "linux":
        return ()
    probe = _LinuxProbe(root, env, machine or os.uname().machine, toolkits)
    results: list[LibraryResolution] = []
    cuda_pythons = [p for p in pythons if p.tensorflow is not None and p.tensorflow.is_cuda_build]
    for python in cuda_pythons:
        tf = python.tensorflow
        names = compat.required_libraries(cuda_version_of(tf), cudnn_version_of(tf), "linux")
        results.extend(probe.resolve_all(python, names))
    if not cuda_pythons:
        names = tuple(
            n for n in compat.required_libraries(None, None, "linux") if n.role in DRIVER_ROLES
        )
        results.extend(probe.resolve_all(None, names))
    if version_functions and loader_versions.is_possible(os_name):
        results = probe.add_function_versions(results, timeout, version_child)
    return tuple(results)


# --------------------------------------------------------------------------- file system


@record
class _Hit:
    """The outcome of looking for one name in one directory."""

    kind: str  # "absent", "ok", "skip", "fatal", "stop" (an error that ends this search list)
    file: LibraryFile | None = None
    identity: tuple[int, int] | None = None


class _Fs:
    """The target's file system seen through a Root; symlinks are followed inside the root."""

    def __init__(self, root: Root):
        self.root = root
        self.host = root.root in ("", "/")
        self._dirs: dict[str, str | None] = {}
        self._listings: dict[str, tuple[str, ...]] = {}
        self._index: dict[str, tuple[frozenset[str], dict[str, tuple[str, ...]]]] = {}

    def real(self, system_path: str) -> str:
        return self.root.path(system_path)

    def resolve(self, system_path: str) -> tuple[str | None, int]:
        """(the final system path, 0) or (None, errno) as open() would see it."""
        if self.host:
            try:
                os.stat(system_path)
            except OSError as exc:
                return None, exc.errno or errno.EIO
            except ValueError:  # an embedded NUL
                return None, errno.EINVAL
            return os.path.realpath(system_path), 0
        final, exc = syspath.follow_links(self.root, system_path, strict=True)
        if exc is not None:
            return None, exc.errno or errno.EIO
        return final, 0

    def directory(self, system_dir: str) -> str | None:
        """The resolved system path of a directory, None when it is not one."""
        if system_dir not in self._dirs:
            final, err = self.resolve(system_dir)
            if err or final is None or not os.path.isdir(self.real(final)):
                final = None
            self._dirs[system_dir] = final
        return self._dirs[system_dir]

    def listing(self, system_dir: str) -> tuple[str, ...]:
        """The names in a directory (sorted), () when absent or unreadable; cached."""
        final = self.directory(system_dir)
        if final is None:
            return ()
        if final not in self._listings:
            try:
                self._listings[final] = tuple(sorted(os.listdir(self.real(final))))
            except OSError:
                self._listings[final] = ()
        return self._listings[final]

    def by_base(self, system_dir: str) -> tuple[frozenset[str], dict[str, tuple[str, ...]]]:
        """(every name, versioned library names by base "libcudnn.so"), for fast lookups."""
        final = self.directory(system_dir)
        if final is None:
            return frozenset(), {}
        if final not in self._index:
            groups: dict[str, list[str]] = {}
            for name in self.listing(system_dir):
                parts = _split_soname(name)
                if parts:
                    groups.setdefault(parts[0], []).append(name)
            self._index[final] = (
                frozenset(self.listing(system_dir)),
                {base: tuple(names) for base, names in groups.items()},
            )
        return self._index[final]

    def link_target(self, system_path: str) -> str | None:
        try:
            return os.readlink(self.real(system_path))
        except (OSError, ValueError):
            return None


# --------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=4096)
def _split_soname(name: str) -> tuple[str, str] | None:
    match = _SONAME_FORM.fullmatch(name)
    return (match.group("base"), match.group("suffix")) if match else None


def name_version(file_name: str, wanted: str) -> str | None:
    """The version a library file name tells beyond the name that was asked for.

    "libcudart.so.12.9.79" for "libcudart.so.12" -> "12.9.79"; "libcudnn.so.8" for
    "libcudnn.so.9" -> "8"; the wanted name itself tells nothing -> None.
    """
    wanted_parts, parts = _split_soname(wanted), _split_soname(file_name)
    if not parts or not wanted_parts or parts[0] != wanted_parts[0]:
        return None
    return None if parts[1] == wanted_parts[1] else parts[1]


def _other_major(file_name: str, wanted: str) -> str | None:
    """The version suffix of a file of the same library but another major, else None."""
    wanted_parts, parts = _split_soname(wanted), _split_soname(file_name)
    if not parts or not wanted_parts or parts[0] != wanted_parts[0]:
        return None
    suffix, wanted_suffix = parts[1], wanted_parts[1]
    if suffix == wanted_suffix or suffix.startswith(wanted_suffix + "."):
        return None
    return suffix


def _same_major_file(file_name: str, wanted: str) -> bool:
    """A fully versioned file of the wanted major ("libcudnn.so.9.3.0" for "libcudnn.so.9")."""
    wanted_parts, parts = _split_soname(wanted), _split_soname(file_name)
    return bool(
        parts
        and wanted_parts
        and parts[0] == wanted_parts[0]
        and parts[1].startswith(wanted_parts[1] + ".")
    )


def _env_dirs(value: str | None) -> tuple[list[str], list[str]]:
    """LD_LIBRARY_PATH split as glibc does (":" and ";"): (absolute dirs, skipped entries).

    An unset or empty variable is ignored; an empty entry means the current directory.
    """
    if not value:
        return [], []
    dirs, skipped = [], []
    for entry in re.split(r"[:;]", value):
        if entry.startswith("/"):
            dirs.append(posixpath.normpath(entry))
        else:
            skipped.append(entry)
    return dirs, skipped


def _absolute(entries: Iterable[str]) -> list[str]:
    return [posixpath.normpath(e) for e in entries if e.startswith("/") and "$" not in e]


def _dedupe(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    seen, out = set(), []
    for via, directory in pairs:
        if directory not in seen:
            seen.add(directory)
            out.append((via, directory))
    return out


# --------------------------------------------------------------------------- Linux


class _Phase:
    """One search list of the loader; an unexpected open error ends the list, not the search."""

    __slots__ = ("dirs", "via")

    def __init__(self, via: str, dirs: list[tuple[str, str]]):
        self.via = via
        self.dirs = dirs  # (via, system dir)


class _LinuxProbe:
    def __init__(
        self, root: Root, env: Mapping[str, str], machine: str, toolkits: Sequence[CudaToolkit]
    ):
        self.root = root
        self.env = env
        self.machine = machine
        self.fs = _Fs(root)
        self.toolkits = toolkits
        self.ld_dirs, self.ld_skipped = _env_dirs(env.get("LD_LIBRARY_PATH"))
        self._cache: ldcache.LdCache | None = None
        self._cache_groups: dict[str, list[ldcache.CacheEntry]] | None = None
        self._default: list[str] | None = None
        self._conf: list[str] | None = None
        self._extra: list[tuple[str, str]] | None = None
        self._dynamic: dict[str, elf.ElfInfo] = {}

    # ------------------------------------------------------------------ machine facts

    @property
    def cache(self) -> ldcache.LdCache:
        if self._cache is None:
            self._cache = ldcache.read_cache(self.fs.real("/etc/ld.so.cache"))
        return self._cache

    def _cache_entries_like(self, wanted: str) -> list[ldcache.CacheEntry]:
        """The cache's entries for `wanted` and for other majors of the same library."""
        if self.cache.error:
            return []
        if self._cache_groups is None:  # one pass over the cache, not one per library
            self._cache_groups = {}
            for entry in self.cache.entries:
                parts = _split_soname(entry.name)
                if parts:
                    self._cache_groups.setdefault(parts[0], []).append(entry)
        parts = _split_soname(wanted)
        if not parts:
            return [e for e in self.cache.entries if e.name == wanted]
        return [
            e
            for e in self._cache_groups.get(parts[0], ())
            if e.name == wanted or _other_major(e.name, wanted)
        ]

    def default_dirs(self) -> list[str]:
        """glibc's built-in directories for this distribution's layout."""
        if self._default is None:
            triplet = _TRIPLETS.get(self.machine.lower())
            if triplet and self.fs.directory(f"/usr/lib/{triplet}"):
                self._default = [f"/lib/{triplet}", f"/usr/lib/{triplet}", "/lib", "/usr/lib"]
            elif self._lib64_is_real():
                self._default = ["/lib64", "/usr/lib64"]
            else:
                self._default = ["/lib", "/usr/lib"]
        return self._default

    def _lib64_is_real(self) -> bool:
        """Fedora/RHEL/SUSE keep 64-bit libraries in a real /usr/lib64 (Arch links it to lib)."""
        if self.machine.lower() not in ("x86_64", "amd64", "aarch64", "ppc64le", "s390x"):
            return False
        try:
            info = os.lstat(self.fs.real("/usr/lib64"))
        except OSError:
            return False
        return stat.S_ISDIR(info.st_mode)

    def conf_dirs(self) -> list[str]:
        """The directories /etc/ld.so.conf lists (includes followed), for stale-cache evidence."""
        if self._conf is None:
            self._conf = []
            self._read_conf("/etc/ld.so.conf", set())
        return self._conf

    def _read_conf(self, system_path: str, seen: set[str]) -> None:
        if system_path in seen or len(seen) > _MAX_CONF_FILES:
            return
        seen.add(system_path)
        final, err = self.fs.resolve(system_path)
        if err or final is None:
            return
        try:
            with open(self.fs.real(final), "rb") as handle:
                text = handle.read(1 << 20).decode("utf-8", "replace")
        except OSError:
            return
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("include"):
                for pattern in line.split()[1:]:
                    if not pattern.startswith("/"):
                        pattern = posixpath.join(posixpath.dirname(system_path), pattern)
                    directory, glob = posixpath.split(pattern)
                    regex = re.compile(_glob_to_regex(glob))
                    for name in self.fs.listing(directory):
                        if regex.fullmatch(name):
                            self._read_conf(posixpath.join(directory, name), seen)
                continue
            if line.startswith("hwcap"):
                continue
            for entry in re.split(r"[\s:,]+", line):
                entry = entry.split("=", 1)[0]  # old "dir=TYPE" syntax
                if entry.startswith("/") and entry not in self._conf:
                    self._conf.append(posixpath.normpath(entry))

    def extra_dirs(self) -> list[tuple[str, str]]:
        """Directories worth listing for other copies: toolkits, conda, driver dirs, ld.so.conf."""
        if self._extra is None:
            target = _CUDA_TARGETS.get(self.machine.lower(), "x86_64-linux")
            toolkit_roots = [t.root for t in self.toolkits if t.root.startswith("/")]
            toolkit_roots += [
                f"/usr/local/{name}"
                for name in self.fs.listing("/usr/local")
                if name.startswith("cuda")
            ]
            pairs = []
            for root_dir in toolkit_roots:
                for sub in ("lib64", "lib", f"targets/{target}/lib", "compat"):
                    pairs.append(("toolkit", posixpath.join(root_dir, sub)))
            conda = self.env.get("CONDA_PREFIX")
            if conda and conda.startswith("/"):
                pairs.append(("conda", posixpath.join(conda, "lib")))
            triplet = _TRIPLETS.get(self.machine.lower(), "x86_64-linux-gnu")
            for directory in (
                "/usr/lib/wsl/lib",
                f"/usr/lib/{triplet}/nvidia/current",
                "/usr/lib/nvidia",
                "/usr/lib64/nvidia",
            ):
                pairs.append(("driver", directory))
            pairs += [("ld.so.conf", d) for d in self.conf_dirs()]
            self._extra = pairs
        return self._extra

    def pip_dirs(self, python: PythonEnv | None) -> list[str]:
        """site-packages/nvidia/*/lib of an interpreter, in site-packages order."""
        if python is None:
            return []
        out = []
        for site in python.site_packages:
            if not site.startswith("/"):
                continue
            nvidia = posixpath.join(site, "nvidia")
            for name in self.fs.listing(nvidia):
                lib = posixpath.join(nvidia, name, "lib")
                if self.fs.directory(lib):
                    out.append(posixpath.normpath(lib))
        return out

    def conda_dirs(self, python: PythonEnv | None) -> list[str]:
        if python is None or not python.prefix.startswith("/"):
            return []
        if self.fs.directory(posixpath.join(python.prefix, "conda-meta")):
            return [posixpath.join(python.prefix, "lib")]
        return []

    def dynamic(self, system_path: str) -> elf.ElfInfo:
        """The dynamic section of a file (cached by system path)."""
        if system_path not in self._dynamic:
            final, err = self.fs.resolve(system_path)
            if err or final is None:
                self._dynamic[system_path] = elf.ElfInfo(path=system_path, error="absent")
            else:
                self._dynamic[system_path] = elf.read_dynamic(self.fs.real(final))
        return self._dynamic[system_path]

    # ------------------------------------------------------------------ the caller

    def _caller(self, tf: TensorflowBuild) -> tuple[str, elf.ElfInfo] | None:
        """The TF shared object that dlopens the CUDA libraries: (system path, dynamic info)."""
        base = tf.package_dir
        if not base.startswith("/"):
            return None
        for relative in (
            "libtensorflow_framework.so.2",
            "libtensorflow_framework.so.1",
            "libtensorflow_framework.so",
            "../tensorflow_core/libtensorflow_framework.so.2",
            "python/_pywrap_tensorflow_internal.so",
        ):
            path = posixpath.normpath(posixpath.join(base, relative))
            info = self.dynamic(path)
            if info.error is None:
                return path, info
        return None

    def _executable_rpath(self, python: PythonEnv) -> list[str]:
        """The interpreter's own DT_RPATH (searched only after an RPATH-only caller's)."""
        if not python.executable.startswith("/"):
            return []
        final, err = self.fs.resolve(python.executable)
        if err or final is None:
            return []
        info = self.dynamic(final)
        if info.error or info.runpath or not info.rpath:
            return []
        origin = posixpath.dirname(final)
        return _absolute(_expand(info.rpath, origin))

    def phases(self, python: PythonEnv | None) -> list[_Phase]:
        """The loader's search lists for a dlopen from TF, in order, before the cache."""
        tf = python.tensorflow if python else None
        runpath = _absolute(tf.runpath) if tf else []
        found = self._caller(tf) if tf else None
        caller = found[1] if found else None
        rpath_only = caller is not None and bool(caller.rpath) and not caller.runpath
        if not runpath and found is not None and caller is not None:
            # the TF probe left it empty: read the caller's own entries
            entries = caller.rpath if rpath_only else caller.runpath
            runpath = _absolute(_expand(entries, posixpath.dirname(found[0])))
        out = []
        if rpath_only and python is not None:
            dirs = runpath + self._executable_rpath(python)
            out.append(_Phase("RPATH", [("RPATH", d) for d in dirs]))
        out.append(_Phase("LD_LIBRARY_PATH", [("LD_LIBRARY_PATH", d) for d in self.ld_dirs]))
        if runpath and not rpath_only:
            out.append(_Phase("RUNPATH", [("RUNPATH", d) for d in runpath]))
        return out

    # ------------------------------------------------------------------ looking up

    def look(self, system_dir: str, name: str, via: str, bits: int) -> _Hit:
        """Look for `name` in one directory as glibc's open_path + open_verify would."""
        names, _ = self.fs.by_base(system_dir)
        if names and name not in names:  # the cached listing says so: no stat per directory
            return _Hit("absent")
        path = posixpath.join(system_dir, name)
        final, err = self.fs.resolve(path)
        if err in (errno.ENOENT, errno.ENOTDIR, errno.EINVAL):
            target = self.fs.link_target(path) if self.fs.directory(system_dir) else None
            if target is not None:
                return _Hit(
                    "absent", LibraryFile(path=path, via=via, error=f"dangling symlink -> {target}")
                )
            return _Hit("absent")
        if err == errno.EACCES:
            return _Hit("skip", LibraryFile(path=path, via=via, error="permission denied"))
        if err or final is None:
            if self.fs.directory(system_dir) is None:
                return _Hit("absent")
            text = "symlink loop" if err == errno.ELOOP else os.strerror(err or errno.EIO)
            return _Hit("stop", LibraryFile(path=path, via=via, error=f"cannot open: {text}"))
        real = self.fs.real(final)
        expected = loader_elf.expected_machine(self.machine, bits)
        kind, why = loader_elf.verdict(real, bits, expected)
        try:
            info = os.stat(real)
            identity = (info.st_dev, info.st_ino)
        except OSError:
            identity = None
        return _Hit(kind, self.describe(path, final, via, name, why), identity)

    def describe(
        self, path: str, final: str, via: str, wanted: str, error: str | None
    ) -> LibraryFile:
        """A LibraryFile with its soname and the version its names tell."""
        soname = None
        info = self.dynamic(final)
        if info.error is None:
            soname = info.soname
        version, source = name_version(posixpath.basename(final), wanted), "file name"
        if version is None and soname:
            version, source = name_version(soname, wanted), "soname"
        return LibraryFile(
            path=path,
            via=via,
            soname=soname,
            version=version,
            version_source=source if version else "",
            error=error,
            real_path=final if final != path else "",
        )

    def resolve_all(
        self, python: PythonEnv | None, names: Sequence[compat.LibraryName]
    ) -> list[LibraryResolution]:
        """Resolutions for `names`, parents before the libraries that depend on them."""
        done: dict[str, LibraryResolution] = {}
        order = sorted(range(len(names)), key=lambda i: self._is_dependent(names[i]))
        for index in order:
            name = names[index]
            done[name.file_name] = self.resolve_one(python, name, done)
        return [done[n.file_name] for n in names]

    @staticmethod
    def _is_dependent(name: compat.LibraryName) -> bool:
        if name.role in _PARENT_ROLES:
            return True
        return name.role == "cudnn" and not _MAIN_CUDNN.fullmatch(name.file_name)

    def _parent_runpath(
        self, name: compat.LibraryName, done: Mapping[str, LibraryResolution]
    ) -> list[str]:
        """The RUNPATH (or RPATH) of the resolved libraries that load `name` themselves."""
        if name.role == "cudnn":
            parents = [
                r for r in done.values() if r.role == "cudnn" and _MAIN_CUDNN.fullmatch(r.wanted)
            ]
        else:
            parent_roles = _PARENT_ROLES.get(name.role, ())
            parents = [r for r in done.values() if r.role in parent_roles]
        out = []
        for parent in parents:
            if parent.resolved is None or parent.resolved.error:
                continue
            info = self.dynamic(parent.resolved.path)
            entries = info.runpath or info.rpath
            out += _absolute(_expand(entries, posixpath.dirname(parent.resolved.path)))
        return out

    def resolve_one(
        self,
        python: PythonEnv | None,
        name: compat.LibraryName,
        done: Mapping[str, LibraryResolution],
    ) -> LibraryResolution:
        wanted = name.file_name
        bits = python.bits if python and python.bits in (32, 64) else 64
        pip_dirs = self.pip_dirs(python)
        phases = self.phases(python)
        parent_dirs = self._parent_runpath(name, done)
        if parent_dirs:
            pip_set = set(pip_dirs)
            extra = [("pip" if d in pip_set else "RUNPATH", d) for d in parent_dirs]
            runpath_phase = next((p for p in phases if p.via in ("RUNPATH", "RPATH")), None)
            if runpath_phase is None:
                phases.append(_Phase("RUNPATH", extra))
            else:
                runpath_phase.dirs = _dedupe(runpath_phase.dirs + extra)
        notes: list[str] = []
        if self.ld_skipped:
            shown = ", ".join(repr(e) for e in self.ld_skipped)
            notes.append(
                f"LD_LIBRARY_PATH entries {shown} are relative to the current directory "
                "of the process and were not searched"
            )
        searched: list[str] = []
        skipped: list[LibraryFile] = []
        resolved: LibraryFile | None = None
        resolved_id = None

        def take(hit: _Hit) -> bool:
            """Record a hit; True when the search ends here."""
            nonlocal resolved, resolved_id
            if hit.kind in ("ok", "fatal"):
                resolved, resolved_id = hit.file, hit.identity
                return True
            if hit.file is not None:
                skipped.append(hit.file)
            return False

        finished = False
        for phase in phases:
            for via, directory in _dedupe(phase.dirs):
                searched.append(f"{via}: {directory}")
                hit = self.look(directory, wanted, via, bits)
                if take(hit):
                    finished = True
                    break
                if hit.kind == "stop":
                    break
            if finished:
                break
        if not finished:
            searched.append("ld.so.cache: /etc/ld.so.cache")
            finished = self._from_cache(wanted, bits, take, notes)
        if not finished:
            for directory in self.default_dirs():
                searched.append(f"default: {directory}")
                hit = self.look(directory, wanted, "default", bits)
                if take(hit):
                    finished = True
                    break
                if hit.kind == "stop":
                    break
        if not finished and name.role in _PIP_FALLBACK_ROLES:
            for directory in pip_dirs:
                searched.append(f"pip: {directory}")
                if take(self.look(directory, wanted, "pip", bits)):
                    notes.append(
                        "not on TensorFlow's RUNPATH: found in the interpreter's NVIDIA wheel "
                        "directory, where the other wheels' own RUNPATH finds it"
                    )
                    break
        candidates = self._candidates(
            python, name, bits, pip_dirs, phases, resolved, resolved_id, skipped
        )
        return LibraryResolution(
            role=name.role,
            wanted=wanted,
            python=python.executable if python else "",
            required=name.required,
            resolved=resolved,
            candidates=tuple(candidates),
            note="; ".join(notes),
            searched=tuple(searched),
        )

    def _from_cache(self, wanted: str, bits: int, take, notes: list[str]) -> bool:
        cache = self.cache
        if cache.error:
            if not cache.error.startswith("cannot read: No such file"):
                notes.append(f"/etc/ld.so.cache ignored: {cache.error}")
            return False
        flags = ldcache.default_flags(self.machine, bits)
        entry, _others = cache.lookup(wanted, flags)
        if entry is None or not entry.path.startswith("/"):
            return False
        directory, file_name = posixpath.split(entry.path)
        hit = self.look(directory, file_name, "ld.so.cache", bits)
        if hit.kind == "absent" and hit.file is None:
            take(
                _Hit(
                    "skip",
                    LibraryFile(
                        path=entry.path,
                        via="ld.so.cache",
                        error="stale ld.so.cache entry: the file is gone",
                    ),
                )
            )
            return False
        return take(hit)

    # ------------------------------------------------------------------ candidates

    def _candidates(
        self, python, name, bits, pip_dirs, phases, resolved, resolved_id, skipped
    ) -> list[LibraryFile]:
        wanted = name.file_name
        pairs: list[tuple[str, str]] = []
        for phase in phases:
            pairs += phase.dirs
        cache_entries = [e for e in self._cache_entries_like(wanted) if e.path.startswith("/")]
        pairs += [("ld.so.cache", posixpath.dirname(e.path)) for e in cache_entries]
        pairs += [("default", d) for d in self.default_dirs()]
        pairs += [("pip", d) for d in pip_dirs]
        pairs += [("conda", d) for d in self.conda_dirs(python)]
        pairs += self.extra_dirs()
        seen_paths = {f.path for f in skipped}
        seen_ids: set[tuple[int, int]] = set()
        if resolved is not None:
            seen_paths.add(resolved.path)
        if resolved_id is not None:
            seen_ids.add(resolved_id)
        out = list(skipped)
        for via, directory in _dedupe(pairs):
            if self.fs.directory(directory) is None:
                continue
            listing, groups = self.fs.by_base(directory)
            names = [wanted] if wanted in listing or not listing else []
            majors: dict[str, str] = {}
            wanted_parts = _split_soname(wanted)
            same_library = groups.get(wanted_parts[0], ()) if wanted_parts else ()
            for entry in same_library:
                other = _other_major(entry, wanted)
                if other is None:
                    continue
                major = other.split(".")[0]
                if major not in majors or len(entry) < len(majors[major]):
                    majors[major] = entry
            names += sorted(majors.values())
            if wanted not in listing:
                names += [e for e in same_library if _same_major_file(e, wanted)][:1]
            for file_name in names:
                path = posixpath.join(directory, file_name)
                if path in seen_paths:
                    continue
                hit = self.look(directory, file_name, via, bits)
                if hit.file is None:
                    continue
                if hit.identity is not None:
                    if hit.identity in seen_ids:
                        continue
                    seen_ids.add(hit.identity)
                seen_paths.add(path)
                found = hit.file
                if file_name != wanted and _same_major_file(file_name, wanted):
                    found = replace(
                        found,
                        error=found.error
                        or (
                            f"no {wanted} link next to it (run ldconfig or create the link): "
                            "the loader cannot find it by that name"
                        ),
                    )
                out.append(found)
        return out

    # ------------------------------------------------------------------ versions

    def add_function_versions(
        self,
        results: list[LibraryResolution],
        timeout: float,
        child: loader_versions.VersionChild | None = None,
    ) -> list[LibraryResolution]:
        """Ask every resolved file (not failing already) its version, in one child process."""
        jobs = []
        for resolution in results:
            found = resolution.resolved
            if found is None or found.error:
                continue
            real = self.fs.real(found.real_path or found.path)
            jobs.append((real, resolution.role, resolution.wanted))
        if not any(loader_versions.calls_for(role, wanted) for _, role, wanted in jobs):
            return results
        answers = loader_versions.call_version_functions(
            jobs, self.env, timeout=timeout, child=child
        )
        out = []
        for resolution in results:
            found = resolution.resolved
            if found is None or found.error:
                out.append(resolution)
                continue
            answer = answers.get(self.fs.real(found.real_path or found.path))
            if answer is None:
                out.append(resolution)
            elif answer.version:
                found = replace(found, version=answer.version, version_source="version function")
                out.append(replace(resolution, resolved=found))
            elif answer.error == "no version function":
                out.append(resolution)
            else:
                note = f"version function: {answer.error}"
                out.append(
                    replace(resolution, note="; ".join(n for n in (resolution.note, note) if n))
                )
        return out


def _expand(entries: Iterable[str], origin: str) -> list[str]:
    return [e.replace("${ORIGIN}", origin).replace("$ORIGIN", origin) for e in entries if e]


def _glob_to_regex(glob: str) -> str:
    out = []
    for char in glob:
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        else:
            out.append(re.escape(char))
    return "".join(out)
