"""The watched interpreter a finding is about, what its TensorFlow needs, pip commands for it.

Shared with the environment and windows rules and the load-test classifier.
"""

from __future__ import annotations

from monitor import compat
from monitor.model import Inventory, PythonEnv, TensorflowBuild
from monitor.record import record
from monitor.rules import fixes
from monitor.versions import major_minor, parse_version


def python_env(inventory: Inventory, executable: str = "") -> PythonEnv | None:
    """The watched interpreter `executable`, else the first one with TensorFlow, else any."""
    for python in inventory.pythons:
        if executable and python.executable == executable:
            return python
    for python in inventory.pythons:
        if python.tensorflow is not None:
            return python
    return inventory.pythons[0] if inventory.pythons else None


def _python_exe(inventory: Inventory, executable: str) -> str:
    python = python_env(inventory, executable)
    return executable or (python.executable if python else "")


def python_command(inventory: Inventory, executable: str = "") -> str:
    """The watched interpreter's own path, quoted, to prefix `-m pip ...` with."""
    return fixes.python_cmd(_python_exe(inventory, executable), inventory.host)


def pip_command(inventory: Inventory, executable: str, *args: str) -> str:
    """`<watched python> -m pip <args>`, each argument quoted as the user's shell needs."""
    return fixes.pip(_python_exe(inventory, executable), inventory.host, *args)


def pip_install(inventory: Inventory, executable: str, *args: str) -> str:
    return pip_command(inventory, executable, "install", *args)


@record
class TfNeeds:
    """What one watched TensorFlow was built for: versions as plain "12.5.1" / "9.3"."""

    python: PythonEnv
    tf: TensorflowBuild
    cuda: str | None
    cudnn: str | None
    facts: compat.TfBuildFacts | None

    @property
    def cuda_major(self) -> int | None:
        parsed = parse_version(self.cuda)
        return parsed[0] if parsed else None

    @property
    def label(self) -> str:
        return f"TensorFlow {self.tf.version or '(unknown version)'}"

    @property
    def gpu_distribution(self) -> str:
        """The distribution whose [and-cuda] extra brings the CUDA wheels (not -cpu/-intel)."""
        dist = self.tf.distribution or "tensorflow"
        return "tensorflow" if dist in ("tensorflow-cpu", "tensorflow-intel") else dist


def tf_needs(inventory: Inventory, executable: str = "") -> TfNeeds | None:
    """The CUDA and cuDNN the interpreter's TensorFlow was built for (None: no TF there).

    The wheel's own build_info wins for CUDA ("12.5.1"); the tested-build table gives the cuDNN
    minor that build_info leaves out ("9" -> "9.3") when their majors agree.
    """
    python = python_env(inventory, executable)
    if python is None or python.tensorflow is None:
        return None
    tf = python.tensorflow
    facts = compat.tf_build(tf.version, inventory.host.os)
    cuda = compat.build_version(tf.cuda_version)
    if cuda is None and facts is not None and facts.cuda:
        cuda = facts.cuda
    cudnn = compat.build_version(tf.cudnn_version)
    if facts is not None and facts.cudnn:
        table, own = major_minor(facts.cudnn), major_minor(cudnn)
        if own is None or (table is not None and table[0] == own[0]):
            cudnn = facts.cudnn
    return TfNeeds(python=python, tf=tf, cuda=cuda, cudnn=cudnn, facts=facts)


def is_cpu_only(inventory: Inventory, executable: str = "") -> bool:
    """The watched TensorFlow is known to be a CPU-only build (it opens no CUDA library)."""
    python = python_env(inventory, executable)
    return bool(python and python.tensorflow and python.tensorflow.is_cuda_build is False)


def subject_for(inventory: Inventory, name: str, python: str) -> str:
    """`name`, tagged with the interpreter when several are watched (keeps subjects unique)."""
    if python and len(inventory.pythons) > 1:
        return f"{name} [{python}]"
    return name
