"""The watched interpreter and its TensorFlow, read from files: TensorFlow is never imported.

`probe_python` starts the interpreter once, with a tiny stdlib-only script (`_CHILD`), to
learn what only it knows: its version, bitness, sys.path and site-packages (PYTHONPATH, .pth
files, the user site and sitecustomize all shape them). Everything else is read here, from
disk: the dist-info records of the distributions that matter, TensorFlow's build_info.py
(parsed with `ast`), the RUNPATH of TensorFlow's own shared objects, and the native files its
RECORD lists but that are gone.

Paths handed in and stored are system paths; `root` maps them to this disk (tests lay out a
fake machine). Nothing here raises for a broken install: problems land in `error` fields.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence

from monitor.compat import TF_BUILD_NAMES
from monitor.facts import elf
from monitor.facts.interpreter import InterpreterQuery, find_tensorflow_package, start_query
from monitor.facts.paths import Root
from monitor.model import Distribution, PythonEnv, TensorflowBuild
from monitor.record import record

_SYSTEM = Root("/")
_WATCHED_EXACT = frozenset(
    {
        "keras",
        "keras-nightly",
        "tf-keras",
        "tf-keras-nightly",
        "torch",
        "jax",
        "jaxlib",
        "intel-tensorflow",
        "intel-tensorflow-avx512",
    }
)
_WATCHED_PREFIXES = ("tensorflow", "tf-nightly", "nvidia-", "jax-cuda")

# TF's own shared objects whose RUNPATH tells where it looks for the pip CUDA wheels; the
# framework first (it does the dlopen calls), relative to the package directory.
_TF_OBJECTS = (
    "libtensorflow_framework.so.2",
    "libtensorflow_cc.so.2",
    "python/_pywrap_tensorflow_internal.so",
)
# When a TensorFlow has no RECORD (copied in, odd installers), at least these must exist.
_TF_ESSENTIALS = {
    "linux": ("libtensorflow_framework.so.2", "python/_pywrap_tensorflow_internal.so"),
    "win32": ("python/_pywrap_tensorflow_internal.pyd",),
}
_NATIVE = re.compile(r"\.(?:so(?:\.\d+)*|pyd|dll|dylib)$", re.IGNORECASE)
_RECORD_NATIVE = re.compile(rb"\.(?:so(?:\.\d+)*|pyd|dll|dylib)[\",\r\n]", re.IGNORECASE)
_LITERAL_ERRORS = (ValueError, TypeError, SyntaxError, MemoryError, RecursionError)
_META_SUFFIXES = (".dist-info", ".egg-info")
_METADATA_HEAD_BYTES = 256 * 1024


# --------------------------------------------------------------------------- the interpreter


def probe_python(
    executable: str,
    root: Root = _SYSTEM,
    env: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    query: InterpreterQuery | None = None,
) -> PythonEnv:
    """Ask `executable` for its paths (one short child process), then read its files.

    query: the question already asked (`start_query`), so its answer can be on its way while
    the caller does other work.
    """
    if query is None:
        query = start_query(executable, root, env)
    facts, error = query.answer(timeout)
    if error is not None:
        return PythonEnv(executable=executable, error=error)
    try:
        sys_path = _strings(facts.get("path"))
        sites = _dedupe(_strings(facts.get("site")))
        platform = str(facts.get("platform", ""))
        version = str(facts.get("version", ""))
        bits = int(facts.get("bits", 64))
        prefix = str(facts.get("prefix", ""))
    except (TypeError, ValueError) as exc:
        return PythonEnv(executable=executable, error=f"unexpected answer from {executable}: {exc}")
    dirs = _search_dirs(sys_path, sites)
    found = scan_distributions(dirs)
    return PythonEnv(
        executable=executable,
        version=version,
        bits=bits,
        platform=platform,
        prefix=root.system(prefix),
        sys_path=tuple(root.system(p) for p in sys_path),
        site_packages=tuple(root.system(p) for p in sites),
        distributions=tuple(
            Distribution(d.name, d.version, root.system(d.location)) for d in found
        ),
        tensorflow=probe_tensorflow(dirs, found, root, platform),
    )


def _strings(value: object) -> list[str]:
    if not isinstance(value, list):
        raise ValueError("expected a list of paths")
    return [str(item) for item in value]


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(item for item in items if item))


def _search_dirs(sys_path: Sequence[str], sites: Sequence[str]) -> list[str]:
    """The directories to read, in the interpreter's import order, each real dir once."""
    seen: set[str] = set()
    dirs = []
    for entry in [*sys_path, *sites]:
        if not entry or not os.path.isdir(entry):
            continue
        key = os.path.realpath(entry)
        if key not in seen:
            seen.add(key)
            dirs.append(entry)
    return dirs


# --------------------------------------------------------------------------- distributions


@record
class FoundDistribution:
    """A distribution as found on disk (real paths); `meta` is its .dist-info / .egg-info."""

    name: str
    version: str
    location: str
    meta: str
    requires: tuple[str, ...] = ()


def normalize_name(name: str) -> str:
    """PEP 503: "TensorFlow_GPU" -> "tensorflow-gpu"."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_watched(name: str) -> bool:
    """The distributions the rules reason about: the TF family, keras, nvidia-*, torch, jax."""
    return name in _WATCHED_EXACT or name.startswith(_WATCHED_PREFIXES)


def scan_distributions(dirs: Sequence[str]) -> list[FoundDistribution]:
    """Watched distributions in `dirs`, in import order (a shadowed copy is listed after)."""
    found = []
    for directory in dirs:
        try:
            names = sorted(
                entry for entry in os.listdir(directory) if entry.endswith(_META_SUFFIXES)
            )
        except OSError:
            continue
        for entry in names:
            stem = entry.rsplit(".", 1)[0]
            dir_name, _, dir_version = stem.partition("-")
            if not is_watched(normalize_name(dir_name)):
                continue
            meta = os.path.join(directory, entry)
            headers = read_metadata_headers(meta)
            name = normalize_name(_first(headers, "name") or dir_name)
            version = _first(headers, "version") or dir_version.split("-")[0]
            if is_watched(name):
                requires = tuple(headers.get("requires-dist", ()))
                found.append(FoundDistribution(name, version, directory, meta, requires))
    return found


def _first(headers: Mapping[str, list[str]], key: str) -> str:
    values = headers.get(key)
    return values[0].strip() if values else ""


def read_metadata_headers(meta: str) -> dict[str, list[str]]:
    """The header block of METADATA / PKG-INFO, keys lower-cased; {} when unreadable."""
    if os.path.isdir(meta):
        name = "METADATA" if meta.endswith(".dist-info") else "PKG-INFO"
        path = os.path.join(meta, name)
    else:  # a distutils install leaves a single .egg-info file
        path = meta
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_METADATA_HEAD_BYTES)
    except OSError:
        return {}
    headers: dict[str, list[str]] = {}
    last: list[str] | None = None
    for line in raw.decode("utf-8", "replace").splitlines():
        if not line.strip():
            break
        if line[:1] in (" ", "\t") and last:
            last[-1] += " " + line.strip()
            continue
        key, colon, value = line.partition(":")
        if not colon or not key or " " in key.strip():
            last = None
            continue
        last = headers.setdefault(key.strip().lower(), [])
        last.append(value.strip())
    return headers


def read_record(meta: str) -> list[str] | None:
    """The native files (.so, .pyd, .dll, .dylib) a RECORD lists, as real paths; None if none."""
    try:
        with open(os.path.join(meta, "RECORD"), "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    base = os.path.dirname(meta)
    # A RECORD of TF is 22,000 lines (2.9 MB): find the few native ones with one bytes regex
    # (1.5 ms; a csv pass over every line costs 20 ms), then read those with csv.
    lines = []
    for match in _RECORD_NATIVE.finditer(data):
        start = data.rfind(b"\n", 0, match.start()) + 1
        end = data.find(b"\n", match.end())
        lines.append(data[start : end if end >= 0 else None].decode("utf-8", "replace"))
    files = []
    for row in csv.reader(dict.fromkeys(lines)):
        if row and _NATIVE.search(row[0]):
            files.append(os.path.normpath(os.path.join(base, row[0])))
    return files


def _record_owns(meta: str, package: str) -> bool:
    """Whether the RECORD of `meta` lists files of the top-level `package`."""
    try:
        with open(os.path.join(meta, "RECORD"), encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith((f"{package}/", f'"{package}/')):
                    return True
    except OSError:
        pass
    return False


# --------------------------------------------------------------------------- tensorflow


def probe_tensorflow(
    dirs: Sequence[str],
    found: Sequence[FoundDistribution],
    root: Root = _SYSTEM,
    platform: str = sys.platform,
) -> TensorflowBuild | None:
    """The TensorFlow the interpreter would import, or None when it has none."""
    package = find_tensorflow_package(dirs)
    builds = [d for d in found if _is_tf_build(d.name)]
    if package is None and not builds:
        return None
    location = os.path.dirname(package) if package else builds[0].location
    owner = _owner(builds, location)
    problems = []
    if package is None:
        package = os.path.join(location, "tensorflow")
        problems.append(
            f"{owner.name if owner else 'tensorflow'} is installed but its package directory "
            f"{root.system(package)} is missing"
        )
    code_dir = package
    core = os.path.join(location, "tensorflow_core")  # TF 2.0 / 2.1 keep the code here
    if not os.path.exists(_build_info_path(package)) and os.path.isdir(core):
        code_dir = core

    info, info_error = read_build_info(_build_info_path(code_dir))
    if info_error and os.path.isdir(code_dir):
        problems.append(info_error)
    fields = build_fields(info)

    natives = read_record(owner.meta) if owner else None
    if natives is None:
        essentials = _TF_ESSENTIALS.get("win32" if platform == "win32" else platform, ())
        natives = (
            [os.path.join(code_dir, rel) for rel in essentials]
            if platform in ("linux", "win32")
            else []
        )
    missing = tuple(root.system(path) for path in natives if not os.path.exists(path))

    version = owner.version if owner else ""
    if not version:
        version = read_version_header(code_dir) or ""
    return TensorflowBuild(
        package_dir=root.system(code_dir),
        distribution=owner.name if owner else "",
        version=version,
        build_info=tuple((key, _as_text(value)) for key, value in info.items()),
        runpath=tensorflow_runpath(code_dir, root),
        missing_files=missing,
        requires=owner.requires if owner else (),
        error="; ".join(problems) or None,
        **fields,
    )


def _is_tf_build(name: str) -> bool:
    return name in TF_BUILD_NAMES or (name.startswith("tf-nightly") and "keras" not in name)


def _owner(builds: Sequence[FoundDistribution], location: str) -> FoundDistribution | None:
    """The distribution that installed the package at `location`.

    Of two that both claim it (a stale dist-info left by an interrupted upgrade), the one
    written last.
    """
    here = [d for d in builds if os.path.realpath(d.location) == os.path.realpath(location)]
    owners = [
        d
        for d in here
        if _record_owns(d.meta, "tensorflow") or _record_owns(d.meta, "tensorflow_core")
    ]
    if owners:
        return max(owners, key=lambda d: _mtime(d.meta))
    ranked = sorted(
        here,
        key=lambda d: (
            TF_BUILD_NAMES.index(d.name) if d.name in TF_BUILD_NAMES else len(TF_BUILD_NAMES)
        ),
    )
    return ranked[0] if ranked else None


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _build_info_path(code_dir: str) -> str:
    return os.path.join(code_dir, "python", "platform", "build_info.py")


def read_build_info(path: str) -> tuple[dict[str, object], str | None]:
    """The key/value pairs of a build_info.py, in file order, and an error (or None).

    Every format seen in wheels: `build_info = collections.OrderedDict([...])` (2.4+),
    a plain dict (2.3), module-level variables (2.0-2.2).
    """
    try:
        with open(path, "rb") as handle:
            source = handle.read()
    except FileNotFoundError:
        return {}, f"{path} is missing"
    except OSError as exc:
        return {}, f"cannot read {path}: {exc.strerror or exc}"
    try:
        tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError) as exc:
        return {}, f"cannot parse {path}: {exc}"
    info: dict[str, object] = {}
    error = None
    for node in tree.body:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        name = getattr(node.targets[0], "id", None)
        if not name or name.startswith("_"):
            continue
        value = node.value
        if name == "build_info":
            if isinstance(value, ast.Call) and len(value.args) == 1 and not value.keywords:
                value = value.args[0]  # collections.OrderedDict([...]) / dict([...])
            try:
                pairs = dict(ast.literal_eval(value))
            except _LITERAL_ERRORS as exc:
                error = f"cannot read the build_info mapping in {path}: {exc}"
                continue
            info.update((str(k), v) for k, v in pairs.items())
        else:
            with contextlib.suppress(*_LITERAL_ERRORS):
                info[name] = ast.literal_eval(value)
    if not info and error is None:
        error = f"{path} holds no build information"
    return info, error


def build_fields(info: Mapping[str, object]) -> dict:
    """The typed TensorflowBuild fields from raw build_info pairs (any format)."""
    cuda = info.get("cuda_version", info.get("cuda_version_number"))
    cudnn = info.get("cudnn_version", info.get("cudnn_version_number"))
    caps = info.get("cuda_compute_capabilities", ())
    if isinstance(caps, str):
        caps = [part for part in caps.split(",") if part.strip()]
    is_cuda = info.get("is_cuda_build")
    if isinstance(is_cuda, str):
        is_cuda = {"true": True, "false": False}.get(is_cuda.strip().lower())
    return {
        "is_cuda_build": is_cuda if isinstance(is_cuda, bool) else None,
        "cuda_version": str(cuda) if cuda not in (None, "") else None,
        "cudnn_version": str(cudnn) if cudnn not in (None, "") else None,
        "compute_capabilities": tuple(str(c).strip() for c in caps)
        if isinstance(caps, (list, tuple))
        else (),
    }


def _as_text(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return str(value)


def read_version_header(code_dir: str) -> str | None:
    """The version from include/tensorflow/core/public/version.h, for a TF without metadata."""
    path = os.path.join(code_dir, "include", "tensorflow", "core", "public", "version.h")
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read(64 * 1024)
    except OSError:
        return None
    parts = {}
    for key in ("MAJOR", "MINOR", "PATCH"):
        match = re.search(rf"#define\s+TF_{key}_VERSION\s+(\d+)", text)
        if not match:
            return None
        parts[key] = match.group(1)
    suffix = re.search(r'#define\s+TF_VERSION_SUFFIX\s+"([^"]*)"', text)
    return f"{parts['MAJOR']}.{parts['MINOR']}.{parts['PATCH']}" + (
        suffix.group(1) if suffix else ""
    )


def tensorflow_runpath(code_dir: str, root: Root = _SYSTEM) -> tuple[str, ...]:
    """RUNPATH (else RPATH) of TF's own shared objects, $ORIGIN expanded, system paths."""
    entries: list[str] = []
    for rel in _TF_OBJECTS:
        path = os.path.join(code_dir, rel)
        if not os.path.isfile(path):
            continue
        info = elf.read_dynamic(path)
        if info.error:
            continue
        raw = info.runpath or info.rpath
        entries.extend(root.system(p) for p in elf.expand_origin(raw, path) if p)
    return tuple(dict.fromkeys(entries))


# --------------------------------------------------------------------------- which interpreters
