"""Rules about the NVIDIA driver: present, loaded, consistent, new enough, not a known-bad one.

The driver is judged against what each watched TensorFlow needs: NVIDIA's per-release minimum
for the CUDA it was built with (Table 3), the minor-version-compatibility floor of that CUDA
major (Table 2), and the newer CUDA runtime pip may have resolved next to it.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Iterable, Sequence

from monitor import compat
from monitor.model import DriverInfo, Finding, HostInfo, Inventory, Link, PythonEnv, Severity
from monitor.record import record
from monitor.rules import fixes
from monitor.rules.tensorflow import (
    build_cuda,
    cuda_pythons,
    install_requirement,
    python_release,
    tf_release,
)
from monitor.versions import at_least, major_minor, parse_version

_LIBRARY_NOT_FOUND = frozenset({"NVML_ERROR_LIBRARY_NOT_FOUND"})
_DRIVER_NOT_LOADED = frozenset({"NVML_ERROR_DRIVER_NOT_LOADED"})
_RM_MISMATCH = frozenset({"NVML_ERROR_LIB_RM_VERSION_MISMATCH"})
_BINDINGS_MISSING = "PYNVML_IMPORT_ERROR"  # monitor.facts.driver.IMPORT_ERROR_CODE
_NOT_FOUND_TEXT = (
    "library not found",
    "cannot open shared object",
    "nvml.dll",
    "could not find module",
    "no nvml",
)


# --------------------------------------------------------------------------- known-bad data


@record
class KnownBad:
    """One row of monitor/data/known_bad.csv: a version range with documented breakage.

    condition: "" or `;`-separated tests on the machine: `gpu_cc<7.5` (any GPU below 7.5),
    `tf=2.21` (the TensorFlow release). A row whose condition cannot be decided does not match.
    """

    component: str
    min_version: str
    max_version_exclusive: str
    platform: str
    condition: str
    severity: Severity
    reason: str
    fix: str
    pip_requirement: str
    source: str

    @property
    def range_text(self) -> str:
        return f">= {self.min_version}, < {self.max_version_exclusive}"


@functools.cache
def known_bad_entries() -> tuple[KnownBad, ...]:
    rows = csv.DictReader(io.StringIO(compat.data_text("known_bad.csv")))
    return tuple(
        KnownBad(
            component=row["component"].strip(),
            min_version=row["min_version"].strip(),
            max_version_exclusive=row["max_version_exclusive"].strip(),
            platform=row["platform"].strip() or "all",
            condition=row["condition"].strip(),
            severity=Severity(row["severity"].strip()),
            reason=row["reason"].strip(),
            fix=row["fix"].strip(),
            pip_requirement=row["pip_requirement"].strip(),
            source=row["source"].strip(),
        )
        for row in rows
    )


_CONDITION = re.compile(r"^\s*(gpu_cc|tf)\s*(<=|>=|<|>|=)\s*(\d+(?:\.\d+)*)\s*$")


def _compare(left: tuple[int, ...], op: str, right: tuple[int, ...]) -> bool:
    width = max(len(left), len(right))
    a, b = left + (0,) * (width - len(left)), right + (0,) * (width - len(right))
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "=": a == b}[op]


def condition_holds(
    condition: str,
    gpu_ccs: Sequence[tuple[int, int]] = (),
    tf: tuple[int, int] | None = None,
) -> bool:
    """Whether every test of `condition` holds on this machine (unknown facts: False)."""
    for part in (p for p in condition.split(";") if p.strip()):
        match = _CONDITION.match(part)
        if not match:
            return False
        key, op, value = match.groups()
        wanted = parse_version(value) or ()
        if key == "gpu_cc":
            if not any(_compare(cc, op, wanted) for cc in gpu_ccs):
                return False
        elif tf is None or not _compare(tf, op, wanted[:2]):
            return False
    return True


def known_bad_matches(
    component: str,
    version: str | None,
    platform: str,
    gpu_ccs: Sequence[tuple[int, int]] = (),
    tf: tuple[int, int] | None = None,
) -> list[KnownBad]:
    """The known-bad rows a component version falls in, on this platform and machine."""
    if parse_version(version) is None:
        return []
    found = []
    for entry in known_bad_entries():
        if entry.component != component or entry.platform not in ("all", platform):
            continue
        if not at_least(version, entry.min_version):
            continue
        if at_least(version, entry.max_version_exclusive):
            continue
        if condition_holds(entry.condition, gpu_ccs, tf):
            found.append(entry)
    return found


def gpu_ccs(inventory: Inventory) -> list[tuple[int, int]]:
    """The compute capabilities of the GPUs NVML listed (unreadable ones left out)."""
    ccs = []
    for gpu in inventory.driver.gpus:
        cc = major_minor(gpu.compute_capability) if gpu.compute_capability else None
        if cc is not None:
            ccs.append(cc)
    return ccs


# --------------------------------------------------------------------------- driver state


def driver_state(driver: DriverInfo) -> str:
    """ "ok", "not-found", "not-loaded", "mismatch", "bindings" or "error".

    "bindings": the monitor's own NVML bindings (pynvml) are missing, so nothing is known
    about the driver.
    """
    code = (driver.error_code or "").strip().upper()
    text = (driver.error or "").lower()
    if code == _BINDINGS_MISSING:
        return "bindings"
    if code in _RM_MISMATCH or "version mismatch" in text:
        return "mismatch"
    if code in _LIBRARY_NOT_FOUND or (not code and any(t in text for t in _NOT_FOUND_TEXT)):
        return "not-found"
    if code in _DRIVER_NOT_LOADED or "driver not loaded" in text:
        return "not-loaded"
    if code or text:
        return "error"
    return "ok" if driver.nvml_loaded else "not-found"


def _driver_evidence(driver: DriverInfo) -> list[tuple[str, str]]:
    evidence = []
    for name, value in (
        ("driver version", driver.driver_version),
        ("NVML library file version", driver.nvml_library_version),
        ("driver CUDA version", driver.cuda_driver_version),
        ("kernel module version", driver.kernel_module_version),
        ("NVML library", driver.nvml_library),
        ("NVML error code", driver.error_code),
        ("NVML error", driver.error),
    ):
        if value:
            evidence.append((name, value))
    if driver.nvml_library_replaced:
        evidence.append(("NVML library replaced while the monitor ran", "yes"))
    return evidence


def _skip_host(host: HostInfo) -> bool:
    return host.os not in ("linux", "windows")


# --------------------------------------------------------------------------- rules


def driver_not_found(inventory: Inventory) -> Iterable[Finding]:
    host, driver = inventory.host, inventory.driver
    if _skip_host(host) or driver_state(driver) != "not-found":
        return
    if host.is_wsl:
        detail = (
            "The NVML library (libnvidia-ml.so.1) could not be loaded. Under WSL2 the"
            " NVIDIA driver is the Windows one: it provides libcuda.so.1 and"
            " libnvidia-ml.so.1 in /usr/lib/wsl/lib. Missing files there mean the"
            " Windows driver is absent or too old for WSL, or this is a WSL1 distro."
        )
        fix = (
            *fixes.driver_install_steps(host),
            "Check the distro runs as WSL 2: `wsl -l -v` in PowerShell (convert with"
            " `wsl --set-version <distro> 2`), and update WSL with `wsl --update`.",
            "Inside WSL: `ls /usr/lib/wsl/lib/` must list libcuda.so.1 and libnvidia-ml.so.1.",
        )
    elif host.os == "windows":
        detail = (
            "nvml.dll could not be loaded (it ships with the NVIDIA display driver in"
            " System32), so no NVIDIA driver is installed or it is broken. Without it"
            " CUDA cannot start and TensorFlow sees no GPU."
        )
        fix = fixes.driver_install_steps(host)
    else:
        detail = (
            "The NVML library libnvidia-ml.so.1, which every NVIDIA driver installs, was"
            " not found, so no NVIDIA driver is installed (or only part of it). TensorFlow"
            " also needs the driver's libcuda.so.1 and cannot use a GPU without it."
        )
        fix = (
            "Check that the GPU is visible on the bus: `lspci | grep -i nvidia`.",
            *fixes.driver_install_steps(host),
        )
    yield Finding(
        id="driver-not-found",
        severity=Severity.ERROR,
        link=Link.DRIVER,
        title="No NVIDIA driver found (the NVML library is missing)",
        detail=detail,
        evidence=tuple(_driver_evidence(driver)) or (("NVML", "not loaded"),),
        fix=tuple(fix),
    )


def driver_not_loaded(inventory: Inventory) -> Iterable[Finding]:
    host, driver = inventory.host, inventory.driver
    if _skip_host(host) or driver_state(driver) != "not-loaded":
        return
    if host.is_wsl:
        fix = (
            "Restart WSL (`wsl --shutdown` in PowerShell) and Windows; if it persists, update"
            " or reinstall the Windows NVIDIA driver and run `wsl --update`.",
        )
    elif host.os == "windows":
        fix = (
            "Open Device Manager > Display adapters: an NVIDIA GPU with a warning sign (e.g."
            " Code 43) has a driver that failed to start.",
            "Restart Windows; if it persists, reinstall the driver (NVIDIA app or "
            + fixes.NVIDIA_DRIVER_PAGE
            + ', "Perform a clean installation").',
        )
    else:
        fix = (
            "Load the kernel module and read why it fails: `sudo modprobe nvidia`, then"
            " `sudo dmesg | grep -iE 'nvidia|nvrm' | tail`.",
            "After a kernel update the module may not be built for the running kernel:"
            " `dkms status`, then `sudo dkms autoinstall` (needs the headers:"
            " linux-headers-$(uname -r)) and reboot.",
            "With Secure Boot on (`mokutil --sb-state`) an unsigned module is refused: enroll"
            " the DKMS key (`sudo mokutil --import /var/lib/dkms/mok.pub`) and reboot, or turn"
            " Secure Boot off.",
            "If nouveau holds the GPU (`lsmod | grep nouveau`), blacklist it and rebuild the"
            " initramfs, then reboot.",
        )
    yield Finding(
        id="driver-not-loaded",
        severity=Severity.ERROR,
        link=Link.DRIVER,
        title="The NVIDIA driver is installed but not loaded",
        detail=(
            "NVML's library is present but reports that the driver is not loaded: the"
            " kernel module (Linux) or the display driver service (Windows) is not running,"
            " so CUDA cannot start and TensorFlow sees no GPU."
        ),
        evidence=tuple(_driver_evidence(driver)),
        fix=fix,
    )


def nvml_error(inventory: Inventory) -> Iterable[Finding]:
    host, driver = inventory.host, inventory.driver
    state = driver_state(driver)
    if _skip_host(host) or state not in ("error", "bindings"):
        return
    if state == "bindings":
        yield Finding(
            id="nvml-error",
            severity=Severity.WARNING,
            link=Link.DRIVER,
            title="The monitor cannot read the driver: NVIDIA's NVML bindings are missing",
            detail=(
                "The monitor's own environment lacks a working `pynvml` module (NVIDIA's"
                " nvidia-ml-py package), so the driver and GPUs were not checked. This is"
                f" not a fault of the TensorFlow stack: {driver.error or driver.error_code}"
            ),
            evidence=tuple(_driver_evidence(driver)),
            fix=(
                "Install NVIDIA's bindings into the environment tf-stack-monitor runs from:"
                " `python -m pip install nvidia-ml-py` (and uninstall the deprecated `pynvml`"
                " or `nvidia-ml-py3` packages if present).",
            ),
        )
        return
    code = (driver.error_code or "").upper()
    text = driver.error or code
    if "NO_PERMISSION" in code or "permission" in text.lower():
        detail = (
            "NVML was refused access to the GPU devices, so the monitor (and usually CUDA"
            " in this session) cannot use them."
        )
        if host.os == "windows":
            fix: tuple[str, ...] = (
                "Run `nvidia-smi` in the same account; if it also fails, reinstall the driver.",
            )
        else:
            fix = (
                "Check the device nodes: `ls -l /dev/nvidia*` must be readable and writable by"
                " you (mode 666, or a group you are in such as video/render).",
                "Add yourself to that group (`sudo usermod -aG video $USER`, then log in again),"
                " or in a container start it with the GPU exposed (`--gpus all` with the NVIDIA"
                " Container Toolkit).",
            )
    else:
        detail = (
            f"NVML could not be initialised or queried ({text}), so the driver, its"
            " version and the GPUs could not be checked."
        )
        fix = (
            "Run `nvidia-smi` and read its error.",
            "Linux: look for driver errors with `sudo dmesg | grep -iE 'nvrm|xid'`; a GPU that"
            " has fallen off the bus needs a reboot."
            if host.os == "linux"
            else "Check Windows Event Viewer > System for nvlddmkm errors; restart Windows.",
        )
    yield Finding(
        id="nvml-error",
        severity=Severity.ERROR,
        link=Link.DRIVER,
        title=f"NVML reported an error: {text}",
        detail=detail,
        evidence=tuple(_driver_evidence(driver)),
        fix=fix,
    )


def driver_reboot_pending(inventory: Inventory) -> Iterable[Finding]:
    host, driver = inventory.host, inventory.driver
    if _skip_host(host):
        return
    mismatch = driver_state(driver) == "mismatch"
    kernel = parse_version(driver.kernel_module_version)
    user_text = driver.driver_version or driver.nvml_library_version
    user = parse_version(user_text)
    differs = kernel is not None and user is not None and kernel != user
    if not (mismatch or differs):
        return
    if differs:
        what = (
            f"the loaded kernel module is {driver.kernel_module_version} but the user-space"
            f" driver libraries are {user_text}"
        )
    else:
        what = "NVML reports that the driver libraries do not match the loaded kernel module"
    yield Finding(
        id="driver-reboot-pending",
        severity=Severity.ERROR,
        link=Link.DRIVER,
        title="A reboot is pending after a driver update",
        detail=(
            f"The NVIDIA driver was updated but the old one is still running: {what}."
            " Until the new kernel module is loaded, CUDA fails to start (TensorFlow logs"
            " 'kernel version ... does not match DSO version' or"
            " CUDA_ERROR_SYSTEM_DRIVER_MISMATCH) and nvidia-smi says 'Driver/library"
            " version mismatch'. Nothing needs reinstalling: the new driver is in place"
            " and only needs to be loaded."
        ),
        evidence=tuple(_driver_evidence(driver)),
        fix=fixes.reboot_steps(host),
    )


@record
class _Need:
    """What one interpreter's TensorFlow needs from the driver."""

    python: PythonEnv
    tf_version: str
    build: str
    build_source: str
    cudart: str | None
    cudart_path: str | None
    effective: str


def _cudart(inventory: Inventory, python: PythonEnv) -> tuple[str | None, str | None]:
    for library in inventory.libraries:
        if library.role != "cudart" or library.python not in ("", python.executable):
            continue
        if library.resolved is not None and parse_version(library.resolved.version):
            return library.resolved.version, library.resolved.path
    return None, None


def _needs(inventory: Inventory) -> list[_Need]:
    needs = []
    for python, tf in cuda_pythons(inventory):
        build, source = build_cuda(tf, inventory.host.os)
        if build is None:
            continue
        cudart, path = _cudart(inventory, python)
        effective = build
        b, c = major_minor(build), major_minor(cudart)
        if b is not None and c is not None and c[0] == b[0] and c > b:
            effective = f"{c[0]}.{c[1]}"
        needs.append(_Need(python, tf.version, build, source, cudart, path, effective))
    return needs


def _newest_tf_for_driver(
    driver: str, platform: str, host: HostInfo, python: PythonEnv
) -> str | None:
    """The newest known TF release whose CUDA this driver runs (natively or by minor compat)."""
    best: tuple[int, int] | None = None
    py = python_release(python.version)
    for text in compat.known_tf_versions():
        facts = compat.tf_build(text, host.os)
        release = tf_release(text)
        if facts is None or release is None or not facts.gpu_supported or not facts.cuda:
            continue
        low, high = major_minor(facts.python_min), major_minor(facts.python_max)
        if py is not None and low and high and not low <= py <= high:
            continue
        floor = compat.minor_compat_min_driver(facts.cuda, platform)
        minimum = floor or compat.toolkit_min_driver(facts.cuda, platform)
        if (
            minimum is not None
            and at_least(driver, minimum.min_driver)
            and (best is None or release > best)
        ):
            best = release
    return f"{best[0]}.{best[1]}" if best else None


def driver_too_old(inventory: Inventory) -> Iterable[Finding]:
    """driver-too-old (error) and driver-minor-compat-only (warning / info)."""
    host, driver = inventory.host, inventory.driver
    if _skip_host(host) or driver_state(driver) != "ok":
        return
    platform = fixes.driver_platform(host)
    installed = driver.driver_version if parse_version(driver.driver_version) else None
    reported = major_minor(driver.cuda_driver_version)
    if installed is None and reported is None:
        return
    for need in _needs(inventory):
        yield from _judge(inventory, need, platform, installed, reported)


def _judge(
    inventory: Inventory,
    need: _Need,
    platform: str,
    installed: str | None,
    reported: tuple[int, int] | None,
) -> Iterable[Finding]:
    host, driver = inventory.host, inventory.driver
    build_mm = major_minor(need.build)
    effective_mm = major_minor(need.effective)
    if build_mm is None or effective_mm is None:
        return
    floor = compat.minor_compat_min_driver(need.build, platform)
    release = compat.toolkit_min_driver(need.build, platform)
    eff_release = (
        compat.toolkit_min_driver(f"{effective_mm[0]}.{effective_mm[1]}", platform)
        if effective_mm != build_mm
        else release
    )

    # "too-old", "build" (below the build's release minimum), "runtime" (only the newer
    # pip runtime is ahead of the driver) or "" (fine).
    verdict = ""
    if installed is not None:
        lowest = floor or release
        if lowest is not None and not at_least(installed, lowest.min_driver):
            verdict = "too-old"
        elif release is not None and not at_least(installed, release.min_driver):
            verdict = "build"
        elif eff_release is not None and not at_least(installed, eff_release.min_driver):
            verdict = "runtime"
    if reported is not None:
        by_report = ""
        if reported[0] < build_mm[0]:
            by_report = "too-old"
        elif reported < build_mm:
            by_report = "build"
        elif reported < effective_mm:
            by_report = "runtime"
        order = ("", "runtime", "build", "too-old")
        if installed is None or order.index(by_report) > order.index(verdict):
            verdict = by_report
    if not verdict:
        return

    python = need.python
    shown = driver.driver_version or "(unknown version)"
    tf_label = f"TensorFlow {need.tf_version}" if need.tf_version else "TensorFlow"
    evidence = [
        ("interpreter", python.executable),
        ("tensorflow", need.tf_version or "?"),
        ("build CUDA", f"{need.build} ({need.build_source})"),
        ("driver version", shown),
    ]
    if driver.cuda_driver_version:
        evidence.append(("driver CUDA version", driver.cuda_driver_version))
    if need.cudart:
        evidence.append(("cudart resolved", f"{need.cudart} ({need.cudart_path})"))
    if release is not None:
        evidence.append(
            (f"minimum driver for CUDA {release.cuda_version} ({platform})", release.min_driver)
        )
    if eff_release is not None and eff_release is not release:
        evidence.append(
            (
                f"minimum driver for CUDA {eff_release.cuda_version} ({platform})",
                eff_release.min_driver,
            )
        )
    if floor is not None:
        evidence.append(
            (
                f"minor-version-compatibility floor CUDA {floor.cuda_version} ({platform})",
                floor.min_driver,
            )
        )
    target = eff_release or release or floor
    steps = list(fixes.driver_install_steps(host, target.min_driver if target else None))
    reported_text = (
        f" The driver itself reports CUDA {driver.cuda_driver_version}."
        if driver.cuda_driver_version
        else ""
    )
    wsl = (
        " (WSL2 uses the Windows driver, so its Windows version numbers apply.)"
        if host.is_wsl
        else ""
    )

    if verdict == "too-old":
        if installed is not None and platform:
            alternative = _newest_tf_for_driver(installed, platform, host, python)
            if alternative and tf_release(alternative) != tf_release(need.tf_version):
                steps.append(
                    f"If the driver cannot be updated (e.g. the GPU's last driver branch is"
                    f" older), TensorFlow {alternative} is the newest release whose CUDA this"
                    " driver runs: "
                    + fixes.pip(
                        python.executable, host, "install", install_requirement(alternative, host)
                    )
                )
        why = []
        if release is not None:
            why.append(
                f"NVIDIA's Table 3 lists {release.min_driver} as the minimum {platform}"
                f" driver for CUDA {release.cuda_version}"
            )
        if floor is not None:
            why.append(
                f"through CUDA minor version compatibility any CUDA {floor.cuda_version}"
                f" program runs from driver {floor.min_driver} (Table 2)"
            )
        elif release is not None:
            why.append(
                f"CUDA {build_mm[0]}.x has no minor version compatibility, so that"
                " minimum is absolute"
            )
        yield Finding(
            id="driver-too-old",
            severity=Severity.ERROR,
            link=Link.DRIVER,
            title=(
                f"NVIDIA driver {shown} is too old for {tf_label} (built with CUDA {need.build})"
            ),
            detail=(
                f"{tf_label} was built with CUDA {need.build}; "
                + "; ".join(why)
                + f". Driver {shown} is below that, so CUDA initialisation fails"
                " (CUDA_ERROR_INSUFFICIENT_DRIVER, 'CUDA driver version is insufficient for"
                " CUDA runtime version') and TensorFlow runs on the CPU only." + reported_text + wsl
            ),
            evidence=tuple(evidence),
            fix=tuple(steps),
            subject=python.executable,
        )
        return

    if verdict == "build":
        minimum = release.min_driver if release else f"one for CUDA {need.build}"
        floor_text = f" (from {floor.min_driver}, Table 2)" if floor else ""
        yield Finding(
            id="driver-minor-compat-only",
            severity=Severity.WARNING,
            link=Link.DRIVER,
            title=(
                f"NVIDIA driver {shown} runs {tf_label} only through CUDA minor version"
                " compatibility"
            ),
            detail=(
                f"{tf_label} was built with CUDA {need.build}, whose release minimum is"
                f" driver {minimum} ({platform}, NVIDIA Table 3). Driver {shown} is older,"
                f" but within CUDA {build_mm[0]}.x minor version compatibility{floor_text},"
                " so TensorFlow starts with a limited feature set: code compiled ahead of"
                " time runs, but PTX produced by a newer toolchain than the driver cannot"
                " be JIT-compiled (CUDA_ERROR_UNSUPPORTED_PTX_VERSION). That hits XLA, whose"
                " ptxas is newer than the driver (it logs 'The NVIDIA driver's CUDA version"
                " is ... older than the PTX compiler version' and compiles serially), and any"
                " GPU that needs PTX JIT." + reported_text + wsl
            ),
            evidence=tuple(evidence),
            fix=tuple(steps),
            subject=python.executable,
        )
        return

    # Only the CUDA runtime pip resolved is newer than the driver; TF's own build is covered.
    yield Finding(
        id="driver-minor-compat-only",
        severity=Severity.INFO,
        link=Link.DRIVER,
        title=(
            f"The pip CUDA runtime {need.cudart or need.effective} is newer than driver {shown}"
        ),
        detail=(
            f"{tf_label} was built with CUDA {need.build} and driver {shown} meets that"
            f" release's minimum ({release.min_driver if release else '?'}). pip resolved"
            f" a newer CUDA runtime ({need.cudart}, CUDA {need.effective}), which needs"
            f" driver {eff_release.min_driver if eff_release else '?'} for its full"
            " feature set; on this driver it runs through CUDA minor version"
            " compatibility. TensorFlow works. Where XLA's ptxas (nvidia-cuda-nvcc) is"
            " newer than the driver as well, XLA logs that the driver is older than the PTX"
            " compiler and compiles without parallelism." + reported_text + wsl
        ),
        evidence=tuple(evidence),
        fix=(
            f"Optional: update the driver to {target.min_driver if target else 'a newer one'}"
            " or newer for the full CUDA feature set:",
            *steps,
        ),
        subject=python.executable,
    )


def driver_known_bad(inventory: Inventory) -> Iterable[Finding]:
    host, driver = inventory.host, inventory.driver
    if _skip_host(host) or driver_state(driver) != "ok":
        return
    platform = fixes.driver_platform(host)
    for entry in known_bad_matches("driver", driver.driver_version, platform, gpu_ccs(inventory)):
        yield Finding(
            id="driver-known-bad",
            severity=entry.severity,
            link=Link.DRIVER,
            title=(
                f"NVIDIA driver {driver.driver_version} is in a known-bad range"
                f" ({entry.range_text})"
            ),
            detail=entry.reason,
            evidence=(
                ("driver version", driver.driver_version or ""),
                ("known-bad range", f"{entry.range_text} ({entry.platform})"),
                ("source", entry.source),
            ),
            fix=(entry.fix, *fixes.driver_install_steps(host)),
            subject=driver.driver_version or "",
        )


RULES = [
    driver_not_found,
    driver_not_loaded,
    nvml_error,
    driver_reboot_pending,
    driver_too_old,
    driver_known_bad,
]
