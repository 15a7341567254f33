"""What the failure builders look at: the failed run's inputs and lookups into the Inventory."""

from __future__ import annotations

from monitor.model import HostInfo, Inventory, LibraryResolution, PythonEnv, TensorflowBuild
from monitor.record import record
from monitor.rules import fixes
from monitor.rules.libraries import TfNeeds, basename, tf_needs

GpuProcess = tuple[int, str, int]  # (pid, name, used MiB)


@record
class FailureContext:
    """What every builder may look at: the raw inputs and lookups into the inventory."""

    exit_code: int | None
    timed_out: bool
    stderr: str
    last_step: str | None
    inventory: Inventory | None
    python: str
    os_name: str
    gpu_processes: tuple[GpuProcess, ...]
    built_for_cuda: str | None = None  # the child's own build_info, when it got that far

    @property
    def windows(self) -> bool:
        return self.os_name == "windows"

    @property
    def host(self) -> HostInfo:
        inventory = self.inventory
        return (
            inventory.host
            if inventory and inventory.host.os == self.os_name
            else HostInfo(os=self.os_name)
        )

    def env(self) -> PythonEnv | None:
        if self.inventory is None or not self.inventory.pythons:
            return None
        for env in self.inventory.pythons:
            if same_path(env.executable, self.python, self.windows):
                return env
        return self.inventory.pythons[0]

    def needs(self) -> TfNeeds | None:
        """The CUDA and cuDNN this interpreter's TensorFlow was built for (the rules' view)."""
        return tf_needs(self.inventory, self.python) if self.inventory else None

    def tf(self) -> TensorflowBuild | None:
        needs = self.needs()
        return needs.tf if needs else None

    def tf_version(self) -> str:
        tf = self.tf()
        return tf.version if tf else ""

    def cuda_version(self) -> str | None:
        needs = self.needs()
        return needs.cuda if needs and needs.cuda else self.built_for_cuda

    def cudnn_version(self) -> str | None:
        needs = self.needs()
        return needs.cudnn if needs else None

    def resolution(self, file_name: str | None) -> LibraryResolution | None:
        """The loader check's answer for `file_name` and this interpreter, when it has one."""
        if not file_name or self.inventory is None:
            return None
        fallback = None
        for res in self.inventory.libraries:
            if not same_name(res.wanted, file_name, self.windows):
                continue
            if same_path(res.python, self.python, self.windows):
                return res
            if not res.python or fallback is None:
                fallback = res
        return fallback

    def role_resolutions(self, role: str) -> tuple[LibraryResolution, ...]:
        if self.inventory is None:
            return ()
        return tuple(
            res
            for res in self.inventory.libraries
            if res.role == role
            and (not res.python or same_path(res.python, self.python, self.windows))
        )

    def variable(self, name: str) -> str | None:
        return self.inventory.environment.get(name) if self.inventory else None

    def pip(self, *args: str) -> str:
        """`<the watched python> -m pip <args>`, quoted for this host's shell."""
        return fixes.pip(self.python, self.host, *args)


def same_path(a: str, b: str, windows: bool) -> bool:
    return a.casefold() == b.casefold() if windows else a == b


def same_name(a: str, b: str, windows: bool) -> bool:
    return same_path(basename(a), basename(b), windows or b.lower().endswith(".dll"))
