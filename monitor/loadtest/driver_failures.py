"""Builders for the NVIDIA driver and the device: a driver too old for TensorFlow's CUDA, a
kernel module that does not match its libraries, and CUDA finding no GPU."""

from __future__ import annotations

import re

from monitor import compat
from monitor.loadtest.failure_context import FailureContext
from monitor.loadtest.failure_ids import DRIVER, NO_DEVICE
from monitor.loadtest.failure_text import error_finding
from monitor.model import Finding, Link
from monitor.rules import fixes


def _driver_floor(ctx: FailureContext) -> tuple[str | None, str | None]:
    """(toolkit floor, minor-version-compatibility floor) for TF's CUDA on this OS."""
    cuda = ctx.cuda_version()
    platform = fixes.driver_platform(ctx.host)  # WSL2 runs the Windows driver
    floor = compat.toolkit_min_driver(cuda, platform)
    minor = compat.minor_compat_min_driver(cuda, platform)
    return (floor.min_driver if floor else None, minor.min_driver if minor else None)


def build_driver_old(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    driver = ctx.inventory.driver if ctx.inventory else None
    parts = [f"CUDA: {m.group(0).strip()}."]
    if driver is not None and driver.driver_version:
        supports = (
            f" (supports CUDA up to {driver.cuda_driver_version})"
            if driver.cuda_driver_version
            else ""
        )
        parts.append(f"Installed driver: {driver.driver_version}{supports}.")
    floor, minor = _driver_floor(ctx)
    cuda = ctx.cuda_version()
    if floor and cuda:
        text = (
            f"TensorFlow {ctx.tf_version()} uses CUDA {cuda}, which needs driver {floor} or newer"
        )
        if minor and minor != floor:
            text += f" ({minor} at the very least, through CUDA minor-version compatibility)"
        parts.append(text + ".")
    return error_finding(
        DRIVER,
        Link.DRIVER,
        "The NVIDIA driver is too old for the CUDA version TensorFlow uses",
        parts,
        (
            *fixes.driver_install_steps(ctx.host, floor),
            "Or use a TensorFlow release built for an older CUDA that this driver supports.",
        ),
    )


def build_driver_mismatch(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    driver = ctx.inventory.driver if ctx.inventory else None
    parts = [f"CUDA: {m.group(0).strip()}."]
    kernel = m.groupdict().get("kernel")
    library = m.groupdict().get("dso")
    if not kernel and driver is not None and driver.kernel_module_version:
        kernel, library = driver.kernel_module_version, driver.driver_version
    if kernel and library and kernel != library:
        parts.append(
            f"The loaded kernel module is {kernel}, but the driver libraries are {library}: "
            "typically a driver update that has not been followed by a reboot."
        )
    fix = (
        *fixes.reboot_steps(ctx.host),
        "If it persists, reinstall the NVIDIA driver so that the kernel module and the libraries "
        "come from the same version.",
    )
    if not ctx.windows:
        fix += (
            "In a container: do not install a driver or CUDA compat package in the image; the "
            "host's driver is mounted in by the NVIDIA container toolkit.",
        )
    return error_finding(
        DRIVER,
        Link.DRIVER,
        "The NVIDIA driver's kernel module and libraries do not match",
        parts,
        fix,
    )


def _hides_all_gpus(value: str, count: int) -> bool:
    """Whether CUDA_VISIBLE_DEVICES leaves no GPU (CUDA stops at the first invalid entry)."""
    text = value.strip()
    if text in ("", "-1", "none", "NoDevFiles"):
        return True
    first = text.split(",")[0].strip()
    if first.upper().startswith(("GPU-", "MIG-")):
        return False  # a UUID: cannot tell from here
    try:
        index = int(first)
    except ValueError:
        return True
    return index < 0 or (count > 0 and index >= count)


_DRIVER_NOT_RUNNING = re.compile(
    r"kernel driver does not appear to be running on this host|"
    r"/proc/driver/nvidia/version does not exist",
    re.IGNORECASE,
)


def build_no_device(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    driver = ctx.inventory.driver if ctx.inventory else None
    gpus = driver.gpus if driver else ()
    names = ", ".join(g.name or f"GPU {g.index}" for g in gpus)
    visible = ctx.variable("CUDA_VISIBLE_DEVICES")
    parts = [f"CUDA: {m.group(0).strip()}."]
    if visible is not None and _hides_all_gpus(visible, len(gpus)):
        title = f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU"
        if gpus:
            parts.append(f"The driver sees {len(gpus)}: {names}.")
        fix: tuple[str, ...] = (
            "Unset CUDA_VISIBLE_DEVICES (or set it to the index of the GPU to use, e.g. 0) "
            "where TensorFlow runs.",
        )
    elif _DRIVER_NOT_RUNNING.search(ctx.stderr) or (driver is not None and not driver.nvml_loaded):
        title = "No GPU: the NVIDIA kernel driver is not running"
        if driver is not None and driver.error:
            parts.append(f"NVML: {driver.error}.")
        fix = fixes.driver_install_steps(ctx.host)
        if not ctx.windows:
            fix += (
                "If a driver is installed: with Secure Boot on, enroll the driver's signing key "
                "(MOK) or the kernel refuses the module; check with: lsmod | grep nvidia",
            )
    elif gpus:
        title = "CUDA finds no GPU, although the driver sees one"
        parts.append(f"NVML sees: {names}.")
        fix = (
            "In a container: start it with the GPU passed in (docker run --gpus all ...).",
            "Check that this user may open /dev/nvidia* (on some distributions: the video or "
            "render group).",
            "If the GPU fell off the bus (Xid errors in dmesg), reboot.",
        )
    else:
        title = "CUDA finds no GPU"
        fix = fixes.driver_install_steps(ctx.host)
    return error_finding(NO_DEVICE, Link.GPU, title, parts, fix)
