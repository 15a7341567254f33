"""Builders for a TensorFlow that does not import: not installed, files missing or mixed from
two versions, or its native runtime not loading."""

from __future__ import annotations

import re

from monitor.loadtest.failure_context import FailureContext
from monitor.loadtest.failure_ids import IMPORT
from monitor.loadtest.failure_text import error_finding
from monitor.loadtest.install_advice import tf_spec
from monitor.model import Finding, Link
from monitor.rules.libraries import basename, normalize_name

# TensorFlow's own native modules: when one fails to load, the install is broken.
TF_OWN = re.compile(r"^(?:lib)?_?pywrap_|^libtensorflow", re.IGNORECASE)


_TF_FAMILY = frozenset(
    {
        "tensorflow",
        "tensorflow-gpu",
        "tensorflow-cpu",
        "tensorflow-intel",
        "intel-tensorflow",
        "tensorflow-macos",
        "tensorflow-aarch64",
        "tensorflow-cpu-aws",
        "tensorflow-rocm",
    }
)
_DEFAULT_UNINSTALL = (
    "tensorflow",
    "tensorflow-gpu",
    "tensorflow-cpu",
    "tensorflow-intel",
    "tf-nightly",
)


def _tf_distributions(ctx: FailureContext, with_keras: bool = False) -> list[str]:
    env = ctx.env()
    found = []
    for dist in env.distributions if env else ():
        name = normalize_name(dist.name)
        is_tf = name in _TF_FAMILY or name.startswith("tf-nightly")
        if is_tf or (with_keras and name in ("keras", "tf-keras")):
            found.append((name, dist.version))
    return [f"{name} {version}" for name, version in found]


def _import_finding(ctx: FailureContext, title: str, what: str, keras: bool = False) -> Finding:
    dists = _tf_distributions(ctx, with_keras=keras)
    parts = [what]
    if dists:
        parts.append(f"Installed: {', '.join(dists)}.")
        if len([d for d in dists if not d.startswith(("keras ", "tf-keras "))]) > 1:
            parts.append(
                "Several TensorFlow distributions write into the same tensorflow/ folder: the "
                "files of one overwrite the other's."
            )
    tf = ctx.tf()
    if tf is not None and tf.missing_files:
        shown = ", ".join(tf.missing_files[:3])
        more = f" and {len(tf.missing_files) - 3} more" if len(tf.missing_files) > 3 else ""
        parts.append(f"Files of TensorFlow's own install are missing: {shown}{more}.")
    names = [d.split(" ")[0] for d in dists] or list(_DEFAULT_UNINSTALL)
    fix = (
        ctx.pip("uninstall", "-y", *names),
        ctx.pip("install", "--no-cache-dir", tf_spec(ctx)),
    )
    return error_finding(IMPORT, Link.TENSORFLOW, title, parts, fix)


def build_tf_own_unloadable(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    """One of TensorFlow's own native libraries is gone or damaged: a broken install."""
    name = basename(m.group("lib"))
    if not TF_OWN.search(name):
        return None
    return _import_finding(
        ctx,
        f"TensorFlow's own {name} cannot be loaded: the install is broken",
        f"Python: {m.group(0).strip()}",
    )


def build_no_module(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    module = m.group("mod")
    if module == "tensorflow":
        return error_finding(
            IMPORT,
            Link.TENSORFLOW,
            f"TensorFlow is not installed for {ctx.python or 'this interpreter'}",
            f"Python: {m.group(0)}",
            (ctx.pip("install", tf_spec(ctx)),),
        )
    return _import_finding(
        ctx,
        f"TensorFlow's install is broken: module {module} is missing",
        f"Python: {m.group(0)}. Part of TensorFlow's own files are gone or come from another "
        "version.",
        keras=module.startswith(("keras", "tf_keras")),
    )


def build_cannot_import(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    module = m.group("mod")
    return _import_finding(
        ctx,
        f"TensorFlow's install is broken: {module} has no {m.group('name')}",
        f"Python: {m.group(0)}. Modules of different TensorFlow (or Keras) versions are mixed.",
        keras=module.startswith(("keras", "tf_keras")),
    )


def build_no_attribute(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    return _import_finding(
        ctx,
        f"TensorFlow's install is broken: tensorflow has no {m.group('name')}",
        f"Python: {m.group(0)}. The tensorflow package is incomplete, or a file or folder named "
        "tensorflow shadows it.",
    )


def build_tf_undefined_symbol(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    name = basename(m.group("lib"))
    if not TF_OWN.search(name):
        return None
    return _import_finding(
        ctx,
        f"TensorFlow's own libraries do not match each other ({name})",
        f"{name} misses a symbol another part of TensorFlow provides ({m.group(0).strip()}): "
        "files of two TensorFlow versions are mixed.",
    )


def build_native_runtime(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    return _import_finding(
        ctx,
        "TensorFlow's native runtime does not load",
        f"Python: {m.group(0).strip()}",
    )
