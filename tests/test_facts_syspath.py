"""Following symlinks inside a Root: the lenient probe view and the strict loader view."""

from __future__ import annotations

import errno
import os

from monitor.facts import syspath
from monitor.facts.paths import Root


def cuda_symlink_tree(tmp_path) -> Root:
    """/usr/local/cuda -> /usr/local/cuda-12.4 (absolute, as NVIDIA's packages make it)."""
    (tmp_path / "usr/local/cuda-12.4/lib64").mkdir(parents=True)
    (tmp_path / "usr/local/cuda-12.4/version.json").write_text("{}")
    os.symlink("/usr/local/cuda-12.4", tmp_path / "usr/local/cuda")
    return Root(str(tmp_path))


def test_absolute_link_stays_inside_the_root(tmp_path):
    root = cuda_symlink_tree(tmp_path)
    assert syspath.resolve(root, "/usr/local/cuda/lib64", "linux") == (
        "/usr/local/cuda-12.4/lib64",
        None,
    )
    assert syspath.follow_links(root, "/usr/local/cuda/lib64", strict=True) == (
        "/usr/local/cuda-12.4/lib64",
        None,
    )


def test_missing_component_is_kept_as_written_or_is_enoent(tmp_path):
    root = cuda_symlink_tree(tmp_path)
    assert syspath.resolve(root, "/usr/local/cuda/lib/x.so", "linux") == (
        "/usr/local/cuda-12.4/lib/x.so",
        None,
    )
    _, exc = syspath.follow_links(root, "/usr/local/cuda/lib/x.so", strict=True)
    assert exc is not None and exc.errno == errno.ENOENT


def test_symlink_loop_is_an_error_in_both_views(tmp_path):
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    root = Root(str(tmp_path))
    assert syspath.resolve(root, "/a", "linux") == ("/a", "symlink loop (too many levels of links)")
    _, exc = syspath.follow_links(root, "/a", strict=True)
    assert exc is not None and exc.errno == errno.ELOOP


def test_file_used_as_directory_is_enotdir_only_when_strict(tmp_path):
    root = cuda_symlink_tree(tmp_path)
    _, exc = syspath.follow_links(root, "/usr/local/cuda/version.json/x", strict=True)
    assert exc is not None and exc.errno == errno.ENOTDIR
    _, error = syspath.resolve(root, "/usr/local/cuda/version.json/x", "linux")
    assert error is None


def test_embedded_nul_never_raises(tmp_path):
    root = Root(str(tmp_path))
    assert syspath.resolve(root, "/lib\0x", "linux")[1] is None
    _, exc = syspath.follow_links(root, "/lib\0x", strict=True)
    assert exc is not None and exc.errno == errno.EINVAL
