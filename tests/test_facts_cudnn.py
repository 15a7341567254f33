"""cuDNN probe over fake machines: Debian packages, toolkit copies, pip wheels, Windows."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.facts.cudnn import probe_cudnn
from monitor.facts.paths import Root
from monitor.model import CudaToolkit, CudnnInstall

SITE = "/home/ada/venvs/tf/lib/python3.11/site-packages"
WIN_CUDA = "C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v11.2"
WIN_CUDNN = "C:\\Program Files\\NVIDIA\\CUDNN\\v9.1"


def put(root: Path, system_path: str, content: str | bytes = "") -> Path:
    path = Path(Root(str(root)).path(system_path))
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def link(root: Path, system_path: str, target: str) -> None:
    path = Path(Root(str(root)).path(system_path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def version_header(major: int, minor: int, patch: int) -> str:
    """The top of a real cudnn_version.h."""
    return (
        "/**\n * \\file: The master cuDNN version file.\n */\n\n"
        "#ifndef CUDNN_VERSION_H_\n#define CUDNN_VERSION_H_\n\n"
        f"#define CUDNN_MAJOR {major}\n#define CUDNN_MINOR {minor}\n"
        f"#define CUDNN_PATCHLEVEL {patch}\n\n"
        "#define CUDNN_VERSION (CUDNN_MAJOR * 10000 + CUDNN_MINOR * 100 + CUDNN_PATCHLEVEL)\n"
        "\n#endif /* CUDNN_VERSION_H */\n"
    )


def probe(tmp_path: Path, os_name="linux", toolkits=(), site_packages=(), env=None):
    return probe_cudnn(Root(str(tmp_path)), env or {}, os_name, toolkits, site_packages)


def test_cudnn8_header_and_lib(tmp_path):
    """Debian's libcudnn8-dev: alternatives links in /usr/include, versioned files beside."""
    multiarch = "/usr/include/x86_64-linux-gnu"
    put(tmp_path, f"{multiarch}/cudnn_version_v8.h", version_header(8, 9, 7))
    put(tmp_path, f"{multiarch}/cudnn_v8.h", "#include <cudnn_version.h>\n")
    link(tmp_path, "/etc/alternatives/cudnn_version_h", f"{multiarch}/cudnn_version_v8.h")
    link(tmp_path, "/usr/include/cudnn_version.h", "/etc/alternatives/cudnn_version_h")
    lib = "/usr/lib/x86_64-linux-gnu"
    put(tmp_path, f"{lib}/libcudnn.so.8.9.7", b"\x7fELF")
    link(tmp_path, f"{lib}/libcudnn.so.8", "libcudnn.so.8.9.7")
    put(tmp_path, f"{lib}/libcudnn_ops_infer.so.8.9.7", b"\x7fELF")

    assert probe(tmp_path) == (
        CudnnInstall(f"{multiarch}/cudnn_version_v8.h", "8.9.7", "header"),
        CudnnInstall(f"{lib}/libcudnn.so.8.9.7", "8.9.7", "library"),
    )


def test_cudnn8_copied_into_a_toolkit_seen_once(tmp_path):
    """The NVIDIA tarball copied into /usr/local/cuda-11.8, reached also via /usr/local/cuda."""
    put(tmp_path, "/usr/local/cuda-11.8/include/cudnn_version.h", version_header(8, 6, 0))
    put(tmp_path, "/usr/local/cuda-11.8/include/cudnn.h", '#include "cudnn_version.h"\n')
    put(tmp_path, "/usr/local/cuda-11.8/lib64/libcudnn.so.8.6.0", b"\x7fELF")
    link(tmp_path, "/usr/local/cuda-11.8/lib64/libcudnn.so.8", "libcudnn.so.8.6.0")
    link(tmp_path, "/usr/local/cuda", "/usr/local/cuda-11.8")
    toolkit = CudaToolkit(root="/usr/local/cuda-11.8", version="11.8.89")

    assert probe(tmp_path, toolkits=(toolkit,)) == (
        CudnnInstall("/usr/local/cuda-11.8/include/cudnn_version.h", "8.6.0", "header"),
        CudnnInstall("/usr/local/cuda-11.8/lib64/libcudnn.so.8.6.0", "8.6.0", "library"),
    )


def test_cudnn7_defines_in_cudnn_h(tmp_path):
    put(
        tmp_path,
        "/usr/local/cuda-10.1/include/cudnn.h",
        "/* cudnn : Neural Networks Library */\n" + version_header(7, 6, 5),
    )
    toolkit = CudaToolkit(root="/usr/local/cuda-10.1")

    assert probe(tmp_path, toolkits=(toolkit,)) == (
        CudnnInstall("/usr/local/cuda-10.1/include/cudnn.h", "7.6.5", "header"),
    )


def test_cudnn9_pip_wheel(tmp_path):
    """tensorflow[and-cuda]: nvidia-cudnn-cu12 9.10.2.21 under site-packages/nvidia/cudnn."""
    put(tmp_path, f"{SITE}/nvidia/cudnn/include/cudnn_version.h", version_header(9, 10, 2))
    put(tmp_path, f"{SITE}/nvidia/cudnn/lib/libcudnn.so.9", b"\x7fELF")
    put(tmp_path, f"{SITE}/nvidia/cudnn/lib/libcudnn_graph.so.9", b"\x7fELF")
    put(tmp_path, f"{SITE}/nvidia_cudnn_cu12-9.10.2.21.dist-info/METADATA", "Version: 9.10.2.21\n")
    put(tmp_path, f"{SITE}/nvidia_cublas_cu12-12.9.1.4.dist-info/METADATA", "")

    assert probe(tmp_path, site_packages=(SITE,)) == (
        CudnnInstall(f"{SITE}/nvidia/cudnn", "9.10.2", "pip"),
    )


def test_cudnn9_pip_wheel_half_upgraded(tmp_path):
    """The dist-info says 9.3 but the files are 9.10's, and the library is gone."""
    put(tmp_path, f"{SITE}/nvidia/cudnn/include/cudnn_version.h", version_header(9, 10, 2))
    (Path(Root(str(tmp_path)).path(f"{SITE}/nvidia/cudnn/lib"))).mkdir()
    put(tmp_path, f"{SITE}/nvidia_cudnn_cu12-9.3.0.75.dist-info/METADATA", "")

    (found,) = probe(tmp_path, site_packages=(SITE,))

    assert (found.version, found.source) == ("9.10.2", "pip")
    assert found.error == (
        "the header says 9.10.2 but nvidia_cudnn_cu12-9.3.0.75.dist-info says 9.3.0.75: "
        f"a mixed or half-upgraded install?; no cuDNN library in {SITE}/nvidia/cudnn/lib"
    )


def test_cudnn_pip_wheel_without_header_uses_dist_info(tmp_path):
    put(tmp_path, f"{SITE}/nvidia/cudnn/lib/libcudnn.so.8", b"\x7fELF")
    put(tmp_path, f"{SITE}/nvidia_cudnn_cu11-8.6.0.163.dist-info/METADATA", "")

    assert probe(tmp_path, site_packages=(SITE,)) == (
        CudnnInstall(f"{SITE}/nvidia/cudnn", "8.6.0.163", "pip"),
    )


def test_cu11_and_cu12_wheels_in_one_directory(tmp_path):
    """Both wheels unpack into nvidia/cudnn: whichever came last overwrote the other's files."""
    put(tmp_path, f"{SITE}/nvidia/cudnn/include/cudnn_version.h", version_header(8, 9, 2))
    put(tmp_path, f"{SITE}/nvidia/cudnn/lib/libcudnn.so.8", b"\x7fELF")
    put(tmp_path, f"{SITE}/nvidia_cudnn_cu11-8.6.0.163.dist-info/METADATA", "")
    put(tmp_path, f"{SITE}/nvidia_cudnn_cu12-8.9.2.26.dist-info/METADATA", "")

    (found,) = probe(tmp_path, site_packages=(SITE, SITE))

    assert (found.version, found.source) == ("8.9.2", "pip")
    assert found.error == (
        "several cuDNN wheels share this directory: nvidia_cudnn_cu11-8.6.0.163.dist-info, "
        "nvidia_cudnn_cu12-8.9.2.26.dist-info"
    )


def test_no_cudnn_dir_in_site_packages(tmp_path):
    put(tmp_path, f"{SITE}/nvidia/cuda_runtime/lib/libcudart.so.12", b"\x7fELF")
    assert probe(tmp_path, site_packages=(SITE,)) == ()


@pytest.mark.parametrize(
    ("content", "version", "error"),
    [
        pytest.param(
            "#define CUDNN_MAJOR 8\n#define CUDNN_MIN",
            "8",
            "no CUDNN_MINOR define: truncated?",
            id="cut-mid-define",
        ),
        pytest.param(
            "#define CUDNN_MAJOR 9\n#define CUDNN_MINOR 1\n",
            "9.1",
            "no CUDNN_PATCHLEVEL define: truncated?",
            id="cut-before-patchlevel",
        ),
        pytest.param("", None, "no CUDNN_MAJOR define: not a cuDNN version header?", id="empty"),
        pytest.param(b"\x00\x01\x02\xff" * 64, None, "binary data, not text", id="binary"),
        pytest.param(
            "<html>404 Not Found</html>",
            None,
            "no CUDNN_MAJOR define: not a cuDNN version header?",
            id="html",
        ),
    ],
)
def test_cudnn_truncated_header(tmp_path, content, version, error):
    put(tmp_path, "/usr/include/cudnn_version.h", content)

    assert probe(tmp_path) == (
        CudnnInstall("/usr/include/cudnn_version.h", version, "header", error),
    )


def test_dangling_library_link(tmp_path):
    """libcudnn.so.8 left behind when the versioned file was removed."""
    link(tmp_path, "/usr/lib/x86_64-linux-gnu/libcudnn.so.8", "libcudnn.so.8.9.7")

    assert probe(tmp_path) == (
        CudnnInstall(
            "/usr/lib/x86_64-linux-gnu/libcudnn.so.8",
            "8.9.7",
            "library",
            "dangling link to /usr/lib/x86_64-linux-gnu/libcudnn.so.8.9.7",
        ),
    )


def test_cudnn_windows_layout(tmp_path):
    """cuDNN 8.1 unzipped into CUDA v11.2, and the cuDNN 9 installer's per-CUDA folders."""
    put(tmp_path, f"{WIN_CUDA}\\include\\cudnn_version.h", version_header(8, 1, 1))
    put(tmp_path, f"{WIN_CUDA}\\bin\\cudnn64_8.dll", b"MZ")
    put(tmp_path, f"{WIN_CUDA}\\bin\\cudart64_110.dll", b"MZ")
    for cuda in ("11.8", "12.4"):
        put(tmp_path, f"{WIN_CUDNN}\\include\\{cuda}\\cudnn_version.h", version_header(9, 1, 0))
        put(tmp_path, f"{WIN_CUDNN}\\bin\\{cuda}\\cudnn64_9.dll", b"MZ")
    toolkit = CudaToolkit(root=WIN_CUDA, version="11.2.152")

    found = probe(tmp_path, "windows", toolkits=(toolkit,))

    assert found == (
        CudnnInstall(f"{WIN_CUDA}\\include\\cudnn_version.h", "8.1.1", "header"),
        CudnnInstall(f"{WIN_CUDNN}\\include\\11.8\\cudnn_version.h", "9.1.0", "header"),
        CudnnInstall(f"{WIN_CUDNN}\\include\\12.4\\cudnn_version.h", "9.1.0", "header"),
        CudnnInstall(f"{WIN_CUDA}\\bin\\cudnn64_8.dll", "8", "library"),
        CudnnInstall(f"{WIN_CUDNN}\\bin\\11.8\\cudnn64_9.dll", "9", "library"),
        CudnnInstall(f"{WIN_CUDNN}\\bin\\12.4\\cudnn64_9.dll", "9", "library"),
    )


def test_windows_pip_wheel(tmp_path):
    site = "C:\\Users\\ada\\venvs\\tf\\Lib\\site-packages"
    put(tmp_path, f"{site}\\nvidia\\cudnn\\include\\cudnn_version.h", version_header(9, 3, 0))
    put(tmp_path, f"{site}\\nvidia\\cudnn\\bin\\cudnn64_9.dll", b"MZ")

    assert probe(tmp_path, "windows", site_packages=(site,)) == (
        CudnnInstall(f"{site}\\nvidia\\cudnn", "9.3.0", "pip"),
    )


def test_nothing_installed(tmp_path):
    (tmp_path / "usr/include").mkdir(parents=True)
    assert probe(tmp_path) == ()
