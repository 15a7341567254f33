"""Rules about the library files TensorFlow loads: missing, wrong version, shadowed, broken.

This entry module only lists the rules (RULES, for the registry in monitor.rules) and keeps
the shared helpers importable from here; each rule and each helper family lives in its own
libraries_* module.

The facts come from the loader probe (one LibraryResolution per file TF asks for) and from
the watched interpreters' nvidia-* wheels. Search order matters (compat README, section 4):
glibc looks in LD_LIBRARY_PATH before TF's RUNPATH (the pip wheels), so a system CUDA there
wins; Windows TF <= 2.10 calls LoadLibrary with a bare name, so its CUDA DLLs come from PATH.
"""

from __future__ import annotations

from monitor.rules.fixes import quote_path as quote
from monitor.rules.libraries_files import DRIVER_ROLES, wanted_major
from monitor.rules.libraries_interpreter import (
    TfNeeds,
    is_cpu_only,
    pip_command,
    pip_install,
    python_command,
    python_env,
    subject_for,
    tf_needs,
)
from monitor.rules.libraries_not_found import library_not_found
from monitor.rules.libraries_not_found_fixes import driver_library_fix
from monitor.rules.libraries_paths import (
    basename,
    dirname,
    is_windows,
    ld_library_path_without,
    where_set_hint,
    windows_add_to_path,
)
from monitor.rules.libraries_shadowed import library_shadowed, versions_differ
from monitor.rules.libraries_unloadable import library_unloadable
from monitor.rules.libraries_wheels import (
    Requirement,
    and_cuda_requirements,
    has_and_cuda,
    installed,
    normalize_name,
    parse_requirement,
    satisfies,
    wheel_for,
)
from monitor.rules.libraries_wheels_mixed import nvidia_wheels_mixed
from monitor.rules.libraries_wrong_version import library_wrong_version

__all__ = [
    "DRIVER_ROLES",
    "RULES",
    "Requirement",
    "TfNeeds",
    "and_cuda_requirements",
    "basename",
    "dirname",
    "driver_library_fix",
    "has_and_cuda",
    "installed",
    "is_cpu_only",
    "is_windows",
    "ld_library_path_without",
    "library_not_found",
    "library_shadowed",
    "library_unloadable",
    "library_wrong_version",
    "normalize_name",
    "nvidia_wheels_mixed",
    "parse_requirement",
    "pip_command",
    "pip_install",
    "python_command",
    "python_env",
    "quote",
    "satisfies",
    "subject_for",
    "tf_needs",
    "versions_differ",
    "wanted_major",
    "wheel_for",
    "where_set_hint",
    "windows_add_to_path",
]

RULES = [
    library_not_found,
    library_wrong_version,
    library_shadowed,
    library_unloadable,
    nvidia_wheels_mixed,
]
