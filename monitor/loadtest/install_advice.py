"""Fix steps several builders share: which TensorFlow to pip install, and how to get the CUDA
libraries it needs on this OS."""

from __future__ import annotations

from monitor import compat
from monitor.loadtest.failure_context import FailureContext
from monitor.rules.libraries import has_and_cuda, wheel_for
from monitor.versions import parse_version


def cuda_major(ctx: FailureContext) -> int | None:
    parsed = parse_version(ctx.cuda_version())
    return parsed[0] if parsed else None


def pip_era(ctx: FailureContext) -> bool:
    """Linux TF that gets its CUDA libraries from pip wheels (tensorflow[and-cuda], 2.14+);
    without an inventory, any Linux TF (today's releases all do)."""
    tf = ctx.tf()
    if tf is None or ctx.inventory is None:
        return ctx.os_name == "linux"
    return has_and_cuda(ctx.inventory, tf)


def tf_spec(ctx: FailureContext) -> str:
    """What to pip install: this TF version, with its CUDA wheels where it has them."""
    version = ctx.tf_version()
    name = "tensorflow[and-cuda]" if pip_era(ctx) else "tensorflow"
    return f"{name}=={version}" if version else name


def cuda_library_steps(ctx: FailureContext, role: str) -> list[str]:
    """How to get TF's CUDA libraries (role: the one that failed) for this OS and TF version."""
    tf, version = ctx.tf(), ctx.tf_version()
    if tf is not None and tf.is_cuda_build is False:
        return [
            f"This TensorFlow ({tf.distribution or 'tensorflow'} {version}) is built without "
            f"CUDA: install a GPU build, e.g. {ctx.pip('install', tf_spec(ctx))}"
        ]
    cuda, cudnn = ctx.cuda_version(), ctx.cudnn_version()
    if ctx.windows:
        facts = compat.tf_build(version, "windows")
        if facts is not None and not facts.gpu_supported:
            return [
                f"TensorFlow {version} has no GPU support on native Windows: use WSL2 with "
                '`pip install "tensorflow[and-cuda]"`, or TensorFlow 2.10 with CUDA 11.2 and '
                "cuDNN 8.1."
            ]
        if cuda and cudnn:
            return [
                f"Install CUDA {cuda} and cuDNN {cudnn} (the versions TensorFlow {version} was "
                "built with) and put their bin directories on PATH, or in a conda environment: "
                f"conda install -c conda-forge cudatoolkit={cuda} cudnn={cudnn}"
            ]
        return [
            "Install the CUDA and cuDNN versions your TensorFlow was built with "
            "(tf.sysconfig.get_build_info()) and put their bin directories on PATH."
        ]
    if pip_era(ctx):
        steps = []
        wheel = wheel_for(role, cuda_major(ctx))
        if wheel:
            steps.append(ctx.pip("install", wheel))
        steps.append(
            ctx.pip("install", tf_spec(ctx))
            + " (installs every CUDA library this TensorFlow needs, as pip wheels)"
        )
        return steps
    if cuda and cudnn:
        return [
            f"Install CUDA {cuda} and cuDNN {cudnn} (the versions TensorFlow {version} was built "
            f"with), e.g. conda install -c conda-forge cudatoolkit={cuda} cudnn={cudnn}, and add "
            "their lib directory to LD_LIBRARY_PATH (or register it with ldconfig)."
        ]
    return [
        "Install the CUDA and cuDNN versions your TensorFlow was built with "
        "(tf.sysconfig.get_build_info()) where the loader finds them."
    ]
