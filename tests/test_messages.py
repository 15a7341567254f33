"""What the notifications say, for diffs as the daemon sees them on real machines."""

from __future__ import annotations

import pytest

from monitor import rules
from monitor.diff import diff_reports
from monitor.messages import (
    BODY_MAX,
    TITLE_MAX,
    Notification,
    merge_diffs,
    notification_for,
)
from monitor.model import (
    Change,
    ChangeKind,
    FactChange,
    Finding,
    Inventory,
    Link,
    Report,
    ReportDiff,
    Severity,
    Verdict,
)
from monitor.record import replace
from tests.scenarios import linux_tf221_pip

PY = "/home/ada/venvs/tf/bin/python"
DRIVER_UPDATE = FactChange(Link.DRIVER, "NVIDIA driver", "535.104.05", "550.54.14")
DRIVER_CHANGE = Change(ChangeKind.DRIVER, "NVIDIA driver", "535.104.05", "550.54.14")

CUDNN8_NOT_FOUND = Finding(
    id="library-not-found",
    severity=Severity.ERROR,
    link=Link.LIBRARIES,
    title="libcudnn.so.8 is not found by the loader",
    detail="TensorFlow opens libcudnn.so.8 by name; the loader finds no such file.",
    evidence=(("wanted", "libcudnn.so.8"), ("python", PY)),
    fix=(
        f"{PY} -m pip install nvidia-cudnn-cu11==8.6.0.163",
        "Or add the directory holding libcudnn.so.8 to LD_LIBRARY_PATH.",
    ),
    subject=f"{PY}: libcudnn.so.8",
)
REBOOT_PENDING = Finding(
    id="driver-reboot-pending",
    severity=Severity.ERROR,
    link=Link.DRIVER,
    title="A reboot is pending after a driver update",
    fix=("sudo reboot",),
)
TF_FILES_MISSING = Finding(
    id="tf-files-missing",
    severity=Severity.ERROR,
    link=Link.TENSORFLOW,
    title="3 of TensorFlow's own native files are missing",
    fix=(f"{PY} -m pip install --force-reinstall --no-deps tensorflow==2.15.1",),
    subject=PY,
)
MINOR_COMPAT = Finding(
    id="driver-minor-compat-only",
    severity=Severity.WARNING,
    link=Link.DRIVER,
    title="NVIDIA driver 525.147.05 runs TensorFlow 2.15.1 only through CUDA minor version "
    "compatibility",
    subject=PY,
)
PATH_DUPLICATE = Finding(
    id="path-duplicate-entry",
    severity=Severity.INFO,
    link=Link.ENVIRONMENT,
    title="/usr/local/cuda/bin is on PATH twice",
)


def driver_update_breaks_cudnn() -> ReportDiff:
    """The daemon issue's story: a driver update, and TensorFlow no longer finds cuDNN."""
    return ReportDiff(Verdict.HEALTHY, Verdict.BROKEN, (DRIVER_UPDATE,), (CUDNN8_NOT_FOUND,))


def driver_update_all_fine() -> ReportDiff:
    return ReportDiff(Verdict.HEALTHY, Verdict.HEALTHY, (DRIVER_UPDATE,))


def cudnn_reinstalled() -> ReportDiff:
    cudnn = FactChange(Link.CUDNN, "cuDNN", "", "8.6.0")
    return ReportDiff(Verdict.BROKEN, Verdict.HEALTHY, (cudnn,), cleared=(CUDNN8_NOT_FOUND,))


# --------------------------------------------------------------------------- worth telling


def test_driver_update_that_breaks_cudnn_says_what_changed_what_broke_and_the_fix():
    n = notification_for(driver_update_breaks_cudnn(), [DRIVER_CHANGE])

    assert n == Notification(
        title="TensorFlow GPU stack broken",
        body="After the NVIDIA driver update 535.104.05 → 550.54.14: libcudnn.so.8 is not found"
        " by the loader.\n"
        f"Fix: {PY} -m pip install nvidia-cudnn-cu11==8.6.0.163",
        urgency="critical",
        finding_ids=("library-not-found",),
        key="stack",
    )


def test_driver_update_while_healthy_is_told_with_both_versions():
    n = notification_for(driver_update_all_fine())

    assert n is not None
    assert n.title == "NVIDIA driver updated to 550.54.14"
    assert n.body == (
        "NVIDIA driver 535.104.05 → 550.54.14.\nThe TensorFlow GPU stack is still healthy."
    )
    assert n.urgency == "normal"


def test_driver_downgrade_and_removal_are_named_so():
    downgrade = replace(DRIVER_UPDATE, before="550.54.14", after="535.104.05")
    removed = replace(DRIVER_UPDATE, after="")

    down = notification_for(ReportDiff(Verdict.HEALTHY, Verdict.HEALTHY, (downgrade,)))
    gone = notification_for(ReportDiff(Verdict.WARNINGS, Verdict.WARNINGS, (removed,)))

    assert down is not None and down.title == "NVIDIA driver downgraded to 535.104.05"
    assert gone is not None and gone.title == "NVIDIA driver 535.104.05 is gone"
    assert gone.body.startswith("NVIDIA driver 535.104.05 → (none).")


def test_driver_update_with_a_new_warning_names_the_warning():
    diff = ReportDiff(Verdict.HEALTHY, Verdict.WARNINGS, (DRIVER_UPDATE,), (MINOR_COMPAT,))

    n = notification_for(diff)

    assert n is not None
    assert "still works (with warnings)" in n.body
    assert "New warning: NVIDIA driver 525.147.05 runs TensorFlow 2.15.1 only" in n.body
    assert n.finding_ids == ("driver-minor-compat-only",)


def test_driver_update_on_a_broken_stack_says_it_is_still_broken():
    diff = ReportDiff(Verdict.BROKEN, Verdict.BROKEN, (DRIVER_UPDATE,))

    n = notification_for(diff)

    assert n is not None
    assert n.title == "NVIDIA driver updated to 550.54.14"
    assert "still broken" in n.body


def test_the_driver_version_is_preferred_over_other_driver_facts():
    cuda = FactChange(Link.DRIVER, "CUDA driver version", "12.2", "12.4")
    kernel = FactChange(Link.DRIVER, "kernel module flavour", "proprietary", "open")
    diff = ReportDiff(Verdict.HEALTHY, Verdict.HEALTHY, (kernel, DRIVER_UPDATE, cuda))

    n = notification_for(diff)

    assert n is not None and n.title == "NVIDIA driver updated to 550.54.14"


def test_healthy_again_names_what_was_resolved_and_what_changed():
    n = notification_for(cudnn_reinstalled())

    assert n == Notification(
        title="TensorFlow GPU stack is healthy again",
        body="Resolved: libcudnn.so.8 is not found by the loader.\nAfter cuDNN 8.6.0 appeared.",
        urgency="normal",
        finding_ids=("library-not-found",),
    )


def test_working_again_with_warnings_left_says_so():
    diff = ReportDiff(
        Verdict.BROKEN,
        Verdict.WARNINGS,
        appeared=(MINOR_COMPAT,),
        cleared=(CUDNN8_NOT_FOUND, REBOOT_PENDING),
    )

    n = notification_for(diff, [DRIVER_CHANGE])

    assert n is not None
    assert n.title == "TensorFlow GPU stack works again, with warnings"
    assert n.body.splitlines() == [
        "Resolved: A reboot is pending after a driver update (+1 more).",
        "After the NVIDIA driver update 535.104.05 → 550.54.14.",
        "Warning: NVIDIA driver 525.147.05 runs TensorFlow 2.15.1 only through CUDA minor "
        "version compatibility.",
    ]


def test_a_new_error_while_already_broken_is_told():
    diff = ReportDiff(Verdict.BROKEN, Verdict.BROKEN, appeared=(TF_FILES_MISSING,))
    change = Change(ChangeKind.PACKAGES, "tensorflow in /home/ada/venvs/tf", "2.15.0", "2.15.1")

    n = notification_for(diff, [change])

    assert n is not None
    assert n.title == "TensorFlow GPU stack: new error"
    assert n.body.startswith(
        "After the update of tensorflow in /home/ada/venvs/tf (2.15.0 → 2.15.1): "
        "3 of TensorFlow's own native files are missing."
    )
    assert n.urgency == "critical"


def test_several_errors_name_the_first_in_chain_order_and_count_the_rest():
    # The driver's error comes first in the chain: it is the likely cause of the others.
    diff = ReportDiff(
        Verdict.HEALTHY,
        Verdict.BROKEN,
        (DRIVER_UPDATE,),
        appeared=(CUDNN8_NOT_FOUND, TF_FILES_MISSING, REBOOT_PENDING),
    )

    n = notification_for(diff)

    assert n is not None
    assert "A reboot is pending after a driver update (+2 more errors)." in n.body
    assert n.body.endswith("\nFix: sudo reboot")
    assert n.finding_ids == ("driver-reboot-pending", "library-not-found", "tf-files-missing")


def test_two_new_errors_while_broken_are_counted_in_the_title():
    diff = ReportDiff(Verdict.BROKEN, Verdict.BROKEN, appeared=(TF_FILES_MISSING, REBOOT_PENDING))

    n = notification_for(diff)

    assert n is not None and n.title == "TensorFlow GPU stack: 2 new errors"


def test_the_first_check_is_told_only_when_broken():
    broken = notification_for(ReportDiff(None, Verdict.BROKEN, appeared=(CUDNN8_NOT_FOUND,)))
    healthy = notification_for(ReportDiff(None, Verdict.HEALTHY))
    warnings = notification_for(ReportDiff(None, Verdict.WARNINGS, appeared=(MINOR_COMPAT,)))

    assert broken is not None
    assert broken.body.startswith("libcudnn.so.8 is not found by the loader.\nFix: ")
    assert healthy is None
    assert warnings is None


def test_broken_without_an_error_in_the_diff_still_says_broken():
    n = notification_for(ReportDiff(Verdict.HEALTHY, Verdict.BROKEN))

    assert n is not None
    assert n.body == "See the report for what broke."


# --------------------------------------------------------------------------- not worth telling


@pytest.mark.parametrize(
    "diff",
    [
        pytest.param(ReportDiff(Verdict.HEALTHY, Verdict.HEALTHY), id="nothing changed"),
        pytest.param(
            ReportDiff(Verdict.HEALTHY, Verdict.HEALTHY, appeared=(PATH_DUPLICATE,)),
            id="an info finding",
        ),
        pytest.param(
            ReportDiff(Verdict.HEALTHY, Verdict.WARNINGS, appeared=(MINOR_COMPAT,)),
            id="a new warning",
        ),
        pytest.param(
            ReportDiff(Verdict.WARNINGS, Verdict.HEALTHY, cleared=(MINOR_COMPAT,)),
            id="a warning cleared",
        ),
        pytest.param(
            ReportDiff(
                Verdict.HEALTHY,
                Verdict.HEALTHY,
                (FactChange(Link.TENSORFLOW, "tensorflow", "2.15.0", "2.15.1"),),
            ),
            id="a tensorflow update that changed nothing",
        ),
        pytest.param(
            ReportDiff(
                Verdict.BROKEN,
                Verdict.BROKEN,
                appeared=(replace(CUDNN8_NOT_FOUND, title="libcudnn.so.8 (cuDNN) not found"),),
                cleared=(CUDNN8_NOT_FOUND,),
            ),
            id="an error reworded",
        ),
        pytest.param(
            ReportDiff(
                Verdict.BROKEN,
                Verdict.BROKEN,
                appeared=(replace(TF_FILES_MISSING, subject="/home/ada/venvs/tf2/bin/python"),),
                cleared=(TF_FILES_MISSING,),
            ),
            id="an error that moved to another interpreter path",
        ),
        pytest.param(
            ReportDiff(Verdict.BROKEN, Verdict.BROKEN, cleared=(REBOOT_PENDING,)),
            id="one of several errors fixed",
        ),
    ],
)
def test_not_worth_a_notification(diff):
    assert notification_for(diff, [Change(ChangeKind.PERIODIC, "periodic check")]) is None


# --------------------------------------------------------------------------- the text


def test_long_texts_fit_what_notification_servers_show():
    long_title = "libcudnn_adv_infer.so.8 and 7 more cuDNN files not found " * 4
    long_fix = (
        "nvidia-cudnn-cu11 8.6.0.163 is installed but its files are missing; reinstall it: "
        f"{PY} -m pip install --force-reinstall --no-deps nvidia-cudnn-cu11==8.6.0.163"
    )
    finding = replace(CUDNN8_NOT_FOUND, title=long_title, fix=(long_fix,))
    facts = (DRIVER_UPDATE, FactChange(Link.CUDA, "CUDA toolkit", "12.2", "12.4"))
    diff = ReportDiff(Verdict.HEALTHY, Verdict.BROKEN, facts, (finding, TF_FILES_MISSING))

    n = notification_for(diff)

    assert n is not None
    assert len(n.title) <= TITLE_MAX
    assert len(n.body) <= BODY_MAX
    first, fix = n.body.split("\n")
    assert first.startswith("After the NVIDIA driver update 535.104.05 → 550.54.14 (+1 more")
    assert first.endswith("… (+1 more error).")
    # The explanation does not fit beside the command: the command is kept whole.
    assert (
        fix == f"Fix: {PY} -m pip install --force-reinstall --no-deps nvidia-cudnn-cu11==8.6.0.163"
    )


def test_a_fix_too_long_even_as_a_command_is_cut_with_an_ellipsis():
    command = "sudo apt install " + " ".join(f"libcudnn8-package-{i}" for i in range(20))
    finding = replace(CUDNN8_NOT_FOUND, fix=(command,))

    n = notification_for(ReportDiff(Verdict.HEALTHY, Verdict.BROKEN, (), (finding,)))

    assert n is not None
    assert len(n.body) == BODY_MAX
    assert n.body.endswith("…")


def test_fix_steps_lose_their_column_alignment():
    fix = "sudo apt install nvidia-driver firmware-misc-nonfree   # needs contrib and non-free"
    finding = replace(REBOOT_PENDING, fix=(fix,))

    n = notification_for(ReportDiff(Verdict.HEALTHY, Verdict.BROKEN, (), (finding,)))

    assert n is not None
    assert n.body.endswith(
        "\nFix: sudo apt install nvidia-driver firmware-misc-nonfree # needs contrib and non-free"
    )


def test_long_values_are_not_put_in_the_sentence():
    path = FactChange(
        Link.ENVIRONMENT,
        "LD_LIBRARY_PATH",
        "/usr/local/cuda-11.8/lib64",
        "/usr/local/cuda-12.4/lib64",
    )
    diff = ReportDiff(Verdict.HEALTHY, Verdict.BROKEN, (path,), (CUDNN8_NOT_FOUND,))

    n = notification_for(diff)

    assert n is not None
    assert n.body.startswith("After a change to LD_LIBRARY_PATH: libcudnn.so.8 is not found")


def test_one_line_is_ascii_for_logs():
    n = notification_for(driver_update_breaks_cudnn())

    assert n is not None
    line = n.one_line()
    assert line.isascii()
    assert "\n" not in line
    assert line.startswith(
        "TensorFlow GPU stack broken: After the NVIDIA driver update 535.104.05 -> 550.54.14:"
    )


# --------------------------------------------------------------------------- merging


def test_merge_of_a_breakage_that_healed_leaves_nothing_to_tell():
    broke = ReportDiff(Verdict.HEALTHY, Verdict.BROKEN, appeared=(CUDNN8_NOT_FOUND,))
    healed = ReportDiff(Verdict.BROKEN, Verdict.HEALTHY, cleared=(CUDNN8_NOT_FOUND,))

    merged = merge_diffs(broke, healed)

    assert merged == ReportDiff(Verdict.HEALTHY, Verdict.HEALTHY)
    assert notification_for(merged) is None


def test_merge_keeps_an_error_that_is_still_there_and_composes_facts():
    cuda = FactChange(Link.CUDA, "CUDA toolkit", "12.2", "12.3")
    first = ReportDiff(Verdict.HEALTHY, Verdict.BROKEN, (DRIVER_UPDATE, cuda), (REBOOT_PENDING,))
    second = ReportDiff(
        Verdict.BROKEN,
        Verdict.BROKEN,
        (
            replace(cuda, before="12.3", after="12.2"),
            replace(DRIVER_UPDATE, before="550.54.14", after="550.67"),
        ),
        appeared=(CUDNN8_NOT_FOUND,),
    )

    merged = merge_diffs(first, second)

    assert merged.before_verdict is Verdict.HEALTHY
    assert merged.after_verdict is Verdict.BROKEN
    assert merged.facts == (replace(DRIVER_UPDATE, after="550.67"),)  # CUDA came back to 12.2
    assert merged.appeared == (REBOOT_PENDING, CUDNN8_NOT_FOUND)
    n = notification_for(merged)
    assert n is not None
    assert n.body.startswith(
        "After the NVIDIA driver update 535.104.05 → 550.67: A reboot is pending after a "
        "driver update (+1 more error)."
    )


def test_merge_of_fix_then_relapse_is_the_relapse_only():
    fixed = ReportDiff(Verdict.BROKEN, Verdict.HEALTHY, cleared=(CUDNN8_NOT_FOUND,))
    relapse = ReportDiff(Verdict.HEALTHY, Verdict.BROKEN, appeared=(TF_FILES_MISSING,))

    merged = merge_diffs(fixed, relapse)

    assert merged.appeared == (TF_FILES_MISSING,)
    assert merged.cleared == (CUDNN8_NOT_FOUND,)
    n = notification_for(merged)
    assert n is not None
    assert n.title == "TensorFlow GPU stack: new error"


# --------------------------------------------------------------------------- with monitor.diff


def _report(inventory: Inventory) -> Report:
    return Report(inventory, rules.evaluate(inventory))


def test_a_driver_update_through_the_real_rules_and_diff():
    before = linux_tf221_pip()
    new = "575.51.03"
    driver = replace(
        before.driver, driver_version=new, cuda_driver_version="12.9", kernel_module_version=new
    )
    pending = replace(driver, kernel_module_version="570.133.07")  # no reboot yet

    updated = notification_for(
        diff_reports(_report(before), _report(replace(before, driver=driver)))
    )
    not_rebooted = notification_for(
        diff_reports(_report(before), _report(replace(before, driver=pending)))
    )

    assert updated == Notification(
        title="NVIDIA driver updated to 575.51.03",
        body="NVIDIA driver 570.133.07 → 575.51.03.\nThe TensorFlow GPU stack is still healthy.",
    )
    assert not_rebooted is not None
    assert not_rebooted.title == "TensorFlow GPU stack broken"
    assert not_rebooted.body == (
        "After the NVIDIA driver update 570.133.07 → 575.51.03 (+1 more change): A reboot is "
        "pending after a driver update.\nFix: sudo reboot"
    )


def test_library_changes_are_not_named_as_the_cause():
    healthy = linux_tf221_pip()
    libraries = tuple(
        replace(lib, resolved=None, candidates=()) if lib.role == "cudnn" else lib
        for lib in healthy.libraries
    )
    diff = diff_reports(_report(healthy), _report(replace(healthy, libraries=libraries)))

    n = notification_for(diff)

    assert diff.facts and all(f.link is Link.LIBRARIES for f in diff.facts)
    assert n is not None
    assert n.body.startswith("libcudnn.so.9 and 7 more cuDNN files not found.\nFix: ")


# --------------------------------------------------------------------------- subjects


@pytest.mark.parametrize(
    ("fact", "phrase"),
    [
        (
            FactChange(Link.TENSORFLOW, f"tensorflow in {PY}", "2.15.0", "2.16.1"),
            "After the update of tensorflow in …/ada/venvs/tf/bin/python (2.15.0 → 2.16.1)",
        ),
        (
            FactChange(
                Link.TENSORFLOW,
                "nvidia-cudnn-cu12 in /home/ada/projects/2024/cool-model/.venv/bin/python",
                "9.1.0.70",
                "",
            ),
            "After nvidia-cudnn-cu12 in …/cool-model/.venv/bin/python was removed (9.1.0.70)",
        ),
        (
            FactChange(Link.CUDA, "CUDA toolkit /usr/local/cuda-12.4", "", "12.4 (active)"),
            "After CUDA toolkit /usr/local/cuda-12.4 appeared (12.4 (active))",
        ),
        (
            FactChange(Link.CUDNN, "cuDNN", "9.1.0", "8.9.7"),
            "After the cuDNN downgrade 9.1.0 → 8.9.7",
        ),
        (
            FactChange(
                Link.DRIVER, "NVIDIA driver", "550.54.14", "not available (NVML not loaded)"
            ),
            "After a change to NVIDIA driver",
        ),
    ],
)
def test_what_changed_reads_as_a_sentence(fact, phrase):
    diff = ReportDiff(Verdict.HEALTHY, Verdict.BROKEN, (fact,), (REBOOT_PENDING,))

    n = notification_for(diff)

    assert n is not None
    assert n.body.startswith(f"{phrase}: A reboot is pending")


@pytest.mark.parametrize(
    ("before", "after", "title"),
    [
        ("550.54.14", "not available (NVML not loaded)", "NVIDIA driver is not available (NVML"),
        ("not available (NVML not loaded)", "550.54.14", "NVIDIA driver 550.54.14 is available"),
        ("", "550.54.14", "NVIDIA driver 550.54.14 installed"),
    ],
)
def test_driver_titles_when_a_side_is_not_a_version(before, after, title):
    fact = FactChange(Link.DRIVER, "NVIDIA driver", before, after)

    n = notification_for(ReportDiff(Verdict.BROKEN, Verdict.BROKEN, (fact,)))

    assert n is not None and n.title.startswith(title)
