"""The HTML report page: structure, escaping, commands, then rendered by headless Chromium.

Reports come from the real rules (monitor.check.judge) over the scenario inventories, and the
load test from the real failure classifier over TensorFlow's own log lines. Run this file as a
script to regenerate the README screenshots: `python tests/test_report_html.py docs/screenshots`.
"""

from __future__ import annotations

import re
import sys
import webbrowser
from html.parser import HTMLParser
from pathlib import Path

import browser
import pytest
import scenarios

from monitor.check import judge
from monitor.loadtest.classify import classify
from monitor.model import (
    Change,
    ChangeKind,
    DriverInfo,
    Finding,
    Link,
    LoadTestResult,
    LoadTestStep,
    Report,
    Severity,
    TimelineEntry,
    Verdict,
)
from monitor.record import replace
from monitor.report_html import (
    CSP,
    STATE_COLOURS,
    box_of,
    chain_boxes,
    fix_segments,
    open_in_browser,
    render_html,
    write_report,
)
from monitor.rules import sort_findings

CHECKED_AT = "2026-11-23T12:00:00+00:00"
GENERATED_AT = "2026-11-23T12:05:00+00:00"

# TensorFlow 2.21's log when the cuDNN wheel's files are gone (dso_loader logs at W level with
# TF_CPP_VMODULE=dso_loader=1, which the load test sets).
CUDNN_GONE_STDERR = (
    "2026-11-23 11:58:02.101: W external/local_xla/xla/stream_executor/cuda/dso_loader.cc:64] "
    "Could not load dynamic library 'libcudnn.so.9'; dlerror: libcudnn.so.9: cannot open shared "
    "object file: No such file or directory\n"
    "2026-11-23 11:58:02.113: W tensorflow/core/common_runtime/gpu/gpu_device.cc:2344] Cannot "
    "dlopen some GPU libraries. Please make sure the missing libraries mentioned above are "
    "installed properly if you would like to use GPU. Follow the guide at "
    "https://www.tensorflow.org/install/gpu for how to download and setup the required "
    "libraries for your platform.\nSkipping registering GPU devices...\n"
)


# --------------------------------------------------------------------------- scenarios


def healthy_report() -> Report:
    """The healthy pip workstation (RTX 4090, driver 570, TF 2.21) with a passing load test."""
    report = judge(scenarios.linux_tf221_pip())
    result = LoadTestResult(
        python=scenarios.LINUX_PY,
        ok=True,
        outcome="gpu",
        started_at="2026-11-23T11:59:40+00:00",
        duration_s=14.2,
        tf_version="2.21.0",
        device="NVIDIA GeForce RTX 4090",
        gflops=61234.5,
        import_seconds=3.4,
        peak_memory_mib=1210.0,
        max_utilization_gpu=97,
        steps=(
            LoadTestStep("import", True, 3.41),
            LoadTestStep("gpus", True, 0.62, "1 GPU"),
            LoadTestStep("matmul", True, 0.88, "4096 × 4096 float32, matches the CPU"),
            LoadTestStep("train", True, 2.10, "one Keras step"),
        ),
    )
    return replace(report, checked_at=CHECKED_AT, duration_s=0.21, load_tests=(result,))


def broken_inventory():
    """Driver downgraded to 535.54 (CUDA 12.2) and the cuDNN wheel's files deleted."""
    inv = scenarios.linux_tf221_pip()
    driver = replace(
        inv.driver,
        driver_version="535.54.03",
        cuda_driver_version="12.2",
        kernel_module_version="535.54.03",
        nvml_version="12.535.54.03",
    )
    libraries = tuple(
        replace(lib, resolved=None) if lib.role == "cudnn" else lib for lib in inv.libraries
    )
    return replace(inv, driver=driver, libraries=libraries)


def cpu_only_load_test(inventory) -> LoadTestResult:
    """What the load test reports on that machine: TF runs, on the CPU, and says why."""
    findings = classify(0, False, CUDNN_GONE_STDERR, "gpus", inventory, scenarios.LINUX_PY, "linux")
    return LoadTestResult(
        python=scenarios.LINUX_PY,
        outcome="cpu-only",
        detail="TensorFlow imported and ran, but found no GPU: libcudnn.so.9 could not be loaded.",
        started_at="2026-11-23T11:57:58+00:00",
        duration_s=9.8,
        last_step="cpu_matmul",
        tf_version="2.21.0",
        built_with_cuda=True,
        physical_gpus=0,
        logical_gpus=0,
        device="CPU",
        cpu_gflops=412.7,
        import_seconds=3.9,
        max_utilization_gpu=0,
        child_seen_on_gpu=False,
        steps=(
            LoadTestStep("import", True, 3.92, "tensorflow 2.21.0"),
            LoadTestStep("build_info", True, 0.01, "CUDA 12.5.1, cuDNN 9"),
            LoadTestStep("gpus", True, 0.35, "TensorFlow found no GPU"),
            LoadTestStep("cpu_matmul", True, 1.21, "1024 × 1024 float32 on the CPU"),
        ),
        loaded_libraries=(
            f"{scenarios.LINUX_SITE}/tensorflow/libtensorflow_framework.so.2",
            f"{scenarios.LINUX_SITE}/nvidia/cuda_runtime/lib/libcudart.so.12",
            f"{scenarios.LINUX_SITE}/nvidia/cublas/lib/libcublas.so.12",
            "/usr/lib/x86_64-linux-gnu/libcuda.so.535.54.03",
        ),
        stderr_tail=CUDNN_GONE_STDERR,
        findings=findings,
    )


def broken_report(load_test: bool = True) -> Report:
    inventory = broken_inventory()
    report = judge(inventory)
    results = (cpu_only_load_test(inventory),) if load_test else ()
    findings = sort_findings((*report.findings, *(f for r in results for f in r.findings)))
    return replace(
        report, checked_at=CHECKED_AT, duration_s=0.31, load_tests=results, findings=findings
    )


def broken_timeline() -> tuple[TimelineEntry, ...]:
    """Four verdicts, oldest first (the page shows them newest first)."""
    return (
        TimelineEntry(
            at="2026-11-20T09:12:00+00:00",
            verdict=Verdict.HEALTHY,
            summary="first check: the stack works",
        ),
        TimelineEntry(
            at="2026-11-22T18:40:00+00:00",
            verdict=Verdict.WARNINGS,
            summary="driver 570.133.07 -> 535.54.03; new warning: driver runs TF 2.21 only "
            "through CUDA minor version compatibility",
            changes=(Change(ChangeKind.DRIVER, "NVIDIA driver", "570.133.07", "535.54.03"),),
            appeared=(
                "NVIDIA driver 535.54.03 runs TensorFlow 2.21.0 only through CUDA minor "
                "version compatibility",
            ),
        ),
        TimelineEntry(
            at="2026-11-23T11:57:30+00:00",
            verdict=Verdict.BROKEN,
            summary="cuDNN files removed from the venv; new error: libcudnn.so.9 not found",
            changes=(
                Change(
                    ChangeKind.PACKAGES,
                    "nvidia-cudnn-cu12 in /home/ada/venvs/tf",
                    "9.10.2.21",
                    "9.10.2.21 (files missing)",
                ),
            ),
            appeared=("libcudnn.so.9 and 7 more cuDNN files not found",),
        ),
        TimelineEntry(
            at=CHECKED_AT,
            verdict=Verdict.BROKEN,
            summary="GPU load test: TensorFlow runs on the CPU only",
            appeared=("TensorFlow could not load libcudnn.so.9",),
        ),
    )


# --------------------------------------------------------------------------- helpers


class _Page(HTMLParser):
    """Collects elements with their attributes, and the text, of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        self._in_script = tag == "script"

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        (self.scripts if self._in_script else self.text).append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.elements
            if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())
        ]

    def with_class(self, name: str) -> list[tuple[str, dict[str, str]]]:
        return [(t, a) for t, a in self.elements if name in a.get("class", "").split()]


def parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def box_states(page: _Page) -> dict[str, str]:
    return {
        a["id"].removeprefix("box-"): a["data-state"] for a in page.find("g") if "data-state" in a
    }


# --------------------------------------------------------------------------- structure


def test_broken_cudnn_colours_its_box_red_and_the_rest_by_their_findings():
    page = parse(render_html(broken_report(), broken_timeline(), GENERATED_AT))
    assert box_states(page) == {
        "driver": "warning",
        "cuda": "ok",
        "cudnn": "error",
        "tensorflow": "ok",
        "gpu": "ok",
    }
    classes = {a["id"]: a["class"] for a in page.find("g") if "data-state" in a}
    assert classes["box-cudnn"] == "box box-error"
    assert classes["box-driver"] == "box box-warning"


def test_healthy_stack_is_all_green_with_versions_in_the_boxes():
    report = healthy_report()
    page_text = render_html(report, (), GENERATED_AT)
    page = parse(page_text)
    assert set(box_states(page).values()) == {"ok"}
    boxes = {b.key: b for b in chain_boxes(report)}
    assert boxes["driver"].version == "570.133.07" and boxes["driver"].note == "CUDA 12.8"
    assert boxes["cuda"].version == "12.9.79" and boxes["cuda"].note == "pip wheel"
    assert boxes["cudnn"].version == "9.10.2.21"
    assert boxes["tensorflow"].version == "2.21.0"
    assert boxes["tensorflow"].note == "CUDA 12.5.1 build"
    assert (boxes["gpu"].version, boxes["gpu"].note) == ("RTX 4090", "CC 8.9")
    assert "No problems found" in page_text
    assert page.find("body", class_="verdict-ok")


def test_missing_pieces_are_grey_not_found():
    inv = scenarios.linux_tf221_pip()
    inv = replace(
        inv,
        driver=DriverInfo(
            error="NVML Shared Library Not Found", error_code="NVML_ERROR_LIBRARY_NOT_FOUND"
        ),
        cudnn=(),
        libraries=tuple(lib for lib in inv.libraries if lib.role != "cudnn"),
    )
    report = Report(inventory=inv, findings=())
    boxes = {b.key: b for b in chain_boxes(report)}
    assert boxes["driver"].state == boxes["cudnn"].state == boxes["gpu"].state == "unknown"
    svg = render_html(report, (), GENERATED_AT)
    assert svg.count('class="box-version absent"') == 3
    assert svg.count(">not found</text>") == 3


@pytest.mark.parametrize(
    ("link", "subject", "title", "box"),
    [
        (
            Link.LIBRARIES,
            "libcudnn.so.9",
            "libcudnn.so.9 and 7 more cuDNN files not found",
            "cudnn",
        ),
        (Link.LIBRARIES, "libcuda.so.1", "libcuda.so.1 (CUDA driver) not found", "driver"),
        (Link.LIBRARIES, "libcublas.so.12", "libcublas.so.12 (cuBLAS) not found", "cuda"),
        (Link.ENVIRONMENT, "PATH", "PATH mixes CUDA 11.8 and 12.2", "cuda"),
        (Link.PYTHON, "", "Python 3.13 is too new for TensorFlow 2.15", "tensorflow"),
        (Link.RUNTIME, "", "msvcp140_1.dll missing", "tensorflow"),
        (Link.GPU, "", "No NVIDIA GPU found", "gpu"),
    ],
)
def test_links_fold_into_the_five_boxes(link, subject, title, box):
    assert box_of(Finding("x", Severity.ERROR, link, title, subject=subject)) == box


def test_every_link_has_a_box():
    for link in Link:
        assert box_of(Finding("x", Severity.ERROR, link, "t")) in {
            "driver",
            "cuda",
            "cudnn",
            "tensorflow",
            "gpu",
        }


def test_notes_do_not_turn_a_box_amber():
    report = replace(
        healthy_report(),
        findings=(Finding("path-duplicate-entry", Severity.INFO, Link.ENVIRONMENT, "dup"),),
    )
    assert {b.key: b.state for b in chain_boxes(report)}["cuda"] == "ok"


def test_everything_is_escaped():
    evil = Finding(
        "evil",
        Severity.ERROR,
        Link.TENSORFLOW,
        "<script>alert(1)</script> & <b>bold</b>",
        detail='"quoted" <img src=x onerror=alert(2)>',
        evidence=(("<th>", "</td><script>alert(3)</script>"),),
        fix=("sudo rm '<script>' && echo \"</code></pre>\"",),
    )
    report = replace(healthy_report(), findings=(evil,))
    timeline = (TimelineEntry(at="<now>", verdict=Verdict.BROKEN, summary="<script>x</script>"),)
    page_text = render_html(report, timeline, GENERATED_AT)
    page = parse(page_text)
    assert len(page.find("script")) == 1  # only the page's own
    assert not page.find("img") and not page.find("b")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page_text
    text = "".join(page.text)
    assert "<script>alert(1)</script>" in text  # shown to the reader as written
    assert "sudo rm '<script>' && echo \"</code></pre>\"" in text
    assert "alert" not in "".join(page.scripts)


def test_fix_commands_are_copyable_blocks():
    page_text = render_html(broken_report(), broken_timeline(), GENERATED_AT)
    page = parse(page_text)
    blocks = [a for t, a in page.with_class("cmd") if t == "div"]
    buttons = [a for t, a in page.with_class("copy") if t == "button"]
    assert len(blocks) >= 3 and len(buttons) >= len(blocks)
    reinstall = (
        "/home/ada/venvs/tf/bin/python -m pip install --force-reinstall --no-deps "
        "nvidia-cudnn-cu12==9.10.2.21"
    )
    assert f"<pre><code>{reinstall}</code></pre>" in page_text
    assert "navigator.clipboard" in "".join(page.scripts)


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ("sudo reboot", [("command", "sudo reboot")]),
        (
            "sudo ubuntu-drivers install   # installs the recommended driver",
            [
                ("command", "sudo ubuntu-drivers install"),
                ("note", "installs the recommended driver"),
            ],
        ),
        (
            "Reinstall it: /v/bin/python -m pip install --no-deps nvidia-cudnn-cu12==9.10.2.21",
            [
                ("text", "Reinstall it: "),
                ("command", "/v/bin/python -m pip install --no-deps nvidia-cudnn-cu12==9.10.2.21"),
            ],
        ),
        (
            "python -m pip install 'tensorflow[and-cuda]' (installs every CUDA library)",
            [
                ("command", "python -m pip install 'tensorflow[and-cuda]'"),
                ("text", " (installs every CUDA library)"),
            ],
        ),
        (
            "Check what the file is: ls -l /x/libcudart.so.12; if it is a copy, remove it: "
            "rm /x/libcudart.so.12",
            [
                ("text", "Check what the file is: "),
                ("command", "ls -l /x/libcudart.so.12"),
                ("text", "; if it is a copy, remove it: "),
                ("command", "rm /x/libcudart.so.12"),
            ],
        ),
        (
            "Take write access away: chmod o-w /srv/bin (prefix sudo if you do not own it).",
            [
                ("text", "Take write access away: "),
                ("command", "chmod o-w /srv/bin"),
                ("text", " (prefix sudo if you do not own it)."),
            ],
        ),
        (
            "Make it permanent (find it with: grep -n PATH ~/.bashrc ~/.profile), then open a "
            "new shell.",
            [
                ("text", "Make it permanent (find it with: "),
                ("command", "grep -n PATH ~/.bashrc ~/.profile"),
                ("text", "), then open a new shell."),
            ],
        ),
        (
            "cd /v/tensorflow && ln -svf ../nvidia/*/lib/*.so* .",
            [("command", "cd /v/tensorflow && ln -svf ../nvidia/*/lib/*.so* .")],
        ),
        (
            "/usr/local/cuda/lib64 is on LD_LIBRARY_PATH and wins: remove it from LD_LIBRARY_PATH.",
            [
                (
                    "text",
                    "/usr/local/cuda/lib64 is on LD_LIBRARY_PATH and wins: remove it from "
                    "LD_LIBRARY_PATH.",
                )
            ],
        ),
        (
            "Close the programs that hold GPU memory: python (pid 4242, 10,240 MiB)",
            [("text", "Close the programs that hold GPU memory: python (pid 4242, 10,240 MiB)")],
        ),
        (
            "Reboot, then check with `nvidia-smi`.",
            [("text", "Reboot, then check with `nvidia-smi`.")],
        ),
    ],
)
def test_fix_steps_split_into_prose_and_commands(step, expected):
    assert [(s.kind, s.text) for s in fix_segments(step)] == expected


def test_load_test_section_shows_outcome_figures_steps_and_libraries():
    page_text = render_html(broken_report(), (), GENERATED_AT)
    section = page_text[page_text.index('id="load-tests"') : page_text.index('id="timeline-h"')]
    assert "TensorFlow works, but on the CPU only" in section
    assert "/home/ada/venvs/tf/bin/python" in section
    assert "413 GFLOP/s" in section and "3.9 s" in section
    for step in ("import", "build_info", "gpus", "cpu_matmul"):
        assert f"<code>{step}</code>" in section
    assert "Libraries TensorFlow loaded (4)" in section
    assert "libcudart.so.12" in section


def test_timeline_is_newest_first_with_changes():
    page_text = render_html(broken_report(), broken_timeline(), GENERATED_AT)
    times = re.findall(r'<time datetime="([^"]+)"', page_text)
    assert times == sorted(times, reverse=True) and len(times) == 4
    assert "<code>570.133.07</code> → <code>535.54.03</code>" in page_text
    assert "5 min ago" in page_text and "3 days ago" in page_text


def test_no_remote_urls_outside_text():
    page = parse(render_html(broken_report(), broken_timeline(), GENERATED_AT))
    for tag, attrs in page.elements:
        for name, value in attrs.items():
            if name == "xmlns":
                continue
            assert not re.search(r"(?i)(https?:)?//[a-z0-9]", value), (tag, name, value)
    assert any("https://" in t for t in page.text)  # URLs from the fixes are still there, as text


def test_csp_forbids_every_fetch():
    page = parse(render_html(healthy_report(), (), GENERATED_AT))
    (meta,) = page.find("meta", **{"http-equiv": "Content-Security-Policy"})
    policy = {d.split()[0]: d.split()[1:] for d in meta["content"].split("; ")}
    assert policy["default-src"] == ["'none'"]
    assert policy["img-src"] == ["data:"]
    assert meta["content"] == CSP
    before = page.elements[: page.elements.index(("meta", meta))]
    assert [tag for tag, _ in before] == ["html", "head", "meta"]  # only <meta charset> first


def test_write_report_is_atomic_and_creates_the_directory(tmp_path):
    target = tmp_path / "state" / "report.html"
    written = write_report(target, "<p>one</p>")
    assert written == target and target.read_text(encoding="utf-8") == "<p>one</p>"
    write_report(target, "<p>two</p>")
    assert target.read_text(encoding="utf-8") == "<p>two</p>"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.html"]


def test_write_report_failure_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "report.html"
    target.mkdir()  # a directory where the file should go: os.replace fails
    with pytest.raises(OSError):
        write_report(target, "<p>x</p>")
    assert list(tmp_path.iterdir()) == [target]


def test_open_in_browser_on_a_headless_box_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    page = write_report(tmp_path / "r.html", "<p>x</p>")
    said = open_in_browser(page)
    assert said.startswith("no graphical session") and page.as_uri() in said


@pytest.mark.skipif(sys.platform == "win32", reason="the fake browser is a shell script")
def test_open_in_browser_runs_the_browser_named_in_BROWSER(tmp_path, monkeypatch):
    opened = tmp_path / "opened.txt"
    fake = tmp_path / "fake-browser"
    fake.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {opened}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setenv("BROWSER", str(fake))
    # webbrowser reads $BROWSER once per process: make it read it again
    monkeypatch.setattr(webbrowser, "_tryorder", None)
    monkeypatch.setattr(webbrowser, "_browsers", {})
    page = write_report(tmp_path / "r.html", "<p>x</p>")
    said = open_in_browser(page)
    assert said == f"opened {page.as_uri()}"
    assert opened.read_text() == page.as_uri()


# --------------------------------------------------------------------------- in Chromium

needs_chromium = pytest.mark.skipif(
    browser.find_chromium() is None, reason="chromium is not installed (CI installs it)"
)


BOX_PIXELS = 4000


def _colour_pixels(image, colour: str, box: tuple[int, int, int, int], tolerance: int = 12) -> int:
    target = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    region = image.crop(box).convert("RGB")
    return sum(
        count
        for count, rgb in region.getcolors(maxcolors=1 << 22)
        if max(abs(a - b) for a, b in zip(rgb, target, strict=True)) <= tolerance
    )


@needs_chromium
def test_chromium_renders_the_diagram_and_fetches_nothing(tmp_path):
    from PIL import Image

    page = write_report(
        tmp_path / "report.html", render_html(broken_report(), broken_timeline(), GENERATED_AT)
    )
    shot = browser.render(page, tmp_path / "report.png", width=1280, height=2000)
    image = Image.open(shot.png)
    assert image.size == (1280, 2000)
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 22)) > 500  # not blank
    top = (0, 0, 1280, 700)
    for state in ("ok", "warning", "error"):  # a box's header band is ~6,000 pixels
        assert _colour_pixels(image, STATE_COLOURS[state], top) > BOX_PIXELS, state
    assert browser.remote_only(browser.page_requests(shot.netlog)) == []


@needs_chromium
def test_chromium_renders_a_healthy_page_without_red(tmp_path):
    from PIL import Image

    page = write_report(tmp_path / "report.html", render_html(healthy_report(), (), GENERATED_AT))
    shot = browser.render(page, tmp_path / "report.png", width=1280, height=900, dark=True)
    image = Image.open(shot.png)
    diagram = (0, 0, 1280, 600)
    assert _colour_pixels(image, STATE_COLOURS["ok"], diagram) > 5 * BOX_PIXELS
    # the legend's marks are red and amber, but no box is
    assert _colour_pixels(image, STATE_COLOURS["error"], diagram) < BOX_PIXELS / 4
    assert _colour_pixels(image, STATE_COLOURS["warning"], diagram) < BOX_PIXELS / 4
    assert image.convert("RGB").getpixel((5, 5)) == (13, 17, 23)  # the dark background


@needs_chromium
def test_the_page_script_runs_under_its_own_policy(tmp_path):
    """The CSP allows the page's script by its hash: a wrong hash would block Copy silently."""
    page = write_report(tmp_path / "report.html", render_html(healthy_report(), (), GENERATED_AT))
    dom = browser.dump_dom(page)
    assert re.search(r'<html lang="en" class="js">', dom)


@needs_chromium
def test_the_net_log_would_catch_a_fetch(tmp_path):
    """Control: a remote image shows up in the net log without our CSP, and not with it."""
    img = '<img src="http://example.invalid/x.png">'
    plain = tmp_path / "plain.html"
    plain.write_text(f"<!DOCTYPE html><html><body><p>x</p>{img}</body></html>")
    shot = browser.render(plain, tmp_path / "plain.png", width=400, height=300)
    assert browser.remote_only(browser.page_requests(shot.netlog)) == [
        "http://example.invalid/x.png"
    ]

    guarded = tmp_path / "guarded.html"
    guarded.write_text(
        f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        f'content="{CSP}"></head><body><p>x</p>{img}</body></html>'
    )
    shot = browser.render(guarded, tmp_path / "guarded.png", width=400, height=300)
    assert browser.page_requests(shot.netlog) == []


# --------------------------------------------------------------------------- screenshots


def write_screenshots(directory: Path) -> list[Path]:
    """The README screenshots: the broken stack in light and dark, and the healthy one."""
    directory.mkdir(parents=True, exist_ok=True)
    pages = (
        ("report-broken", broken_report(), broken_timeline(), False, 2300),
        ("report-broken-dark", broken_report(), broken_timeline(), True, 1100),
        ("report-healthy", healthy_report(), broken_timeline()[:1], False, 1250),
    )
    written = []
    for name, report, timeline, dark, height in pages:
        page = write_report(directory / f"{name}.html", render_html(report, timeline, GENERATED_AT))
        shot = browser.render(page, directory / f"{name}.png", height=height, dark=dark)
        page.unlink()
        shot.netlog.unlink(missing_ok=True)
        written.append(shot.png)
    return written


if __name__ == "__main__":
    for path in write_screenshots(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")):
        print(path)
