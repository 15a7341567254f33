"""`tf-stack-monitor check` as a process: exit codes, JSON, snapshots, redaction, errors.

The machine is a fake root under tmp (nothing installed: no driver), so the verdict is
known; the CLI runs as `python -m monitor`, as the console script does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SECRET_USER = "zedsecret"
SECRET_HOME = "/home/zedsecret"


def cli(*args: str, **env_changes: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": SECRET_HOME, "USER": SECRET_USER, "LOGNAME": SECRET_USER}
    env.update(env_changes)
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    root = tmp_path / "machine"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    return root


def test_json_report_and_its_exit_code(machine):
    proc = cli("check", "--json", "--root", str(machine))
    report = json.loads(proc.stdout)
    assert proc.returncode == report["exit_code"] == 2  # no driver on the fake machine
    assert report["verdict"] == "broken" and report["schema"] == 1
    assert "driver-not-found" in {f["id"] for f in report["findings"]}
    assert report["inventory"]["host"]["os_release"] == "Debian GNU/Linux 12 (bookworm)"


def test_a_saved_snapshot_is_judged_the_same_offline(machine, tmp_path):
    bundle = tmp_path / "bundle.json"
    saved = cli("check", "--json", "--root", str(machine), "--save-snapshot", str(bundle))
    again = cli("check", "--json", "--snapshot", str(bundle))
    first, second = json.loads(saved.stdout), json.loads(again.stdout)
    assert again.returncode == saved.returncode == 2
    assert [f["id"] for f in second["findings"]] == [f["id"] for f in first["findings"]]
    assert second["inventory"] == first["inventory"]
    text = cli("check", "--snapshot", str(bundle))
    assert text.stdout.startswith("BROKEN: ")


def test_redact_hides_user_home_and_host_in_output_and_snapshot(machine, tmp_path):
    bundle = tmp_path / "bundle.json"
    proc = cli(
        "check",
        "--json",
        "--redact",
        "--root",
        str(machine),
        "--save-snapshot",
        str(bundle),
        PATH=f"{SECRET_HOME}/bin:/usr/bin",
    )
    for text in (proc.stdout, bundle.read_text()):
        assert SECRET_USER not in text and f'{os.uname().nodename}"' not in text
        assert "<home>/bin" in text
    unredacted = cli("check", "--json", "--root", str(machine), PATH=f"{SECRET_HOME}/bin")
    assert SECRET_HOME in unredacted.stdout  # so the test above could fail


def test_text_output_is_coloured_only_on_request(machine):
    plain = cli("check", "--root", str(machine))
    assert plain.returncode == 2
    assert plain.stdout.startswith("BROKEN: 1 error") and "\033[" not in plain.stdout
    coloured = cli("check", "--root", str(machine), "--color", "always")
    assert "\033[31m" in coloured.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json at all", "cannot check: not JSON"),
        ('{"inventory": {"schema": 99}}', "newer than this tf-stack-monitor understands"),
        ("[1, 2]", "not a tf-stack-monitor snapshot"),
    ],
)
def test_a_bad_snapshot_fails_with_exit_3_and_a_reason(tmp_path, content, message):
    bundle = tmp_path / "bundle.json"
    bundle.write_text(content)
    proc = cli("check", "--snapshot", str(bundle))
    assert proc.returncode == 3
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_a_snapshot_that_cannot_be_written_fails_with_exit_3(machine, tmp_path):
    proc = cli("check", "--root", str(machine), "--save-snapshot", str(tmp_path / "no/such.json"))
    assert proc.returncode == 3
    assert "cannot write snapshot" in proc.stderr and "No such file or directory" in proc.stderr


def test_a_missing_snapshot_file_fails_with_exit_3(tmp_path):
    proc = cli("check", "--snapshot", str(tmp_path / "nowhere.json"))
    assert proc.returncode == 3 and "cannot check:" in proc.stderr


def test_no_command_prints_the_help():
    proc = cli()
    assert proc.returncode == 0 and proc.stdout.startswith("usage: tf-stack-monitor")


def test_the_console_entry_freezes_the_collector_before_exit():
    """`console` (the script and `python -m monitor`) spares the exit its garbage
    collection (gc.freeze); `main` alone, used in-process, does not."""
    code = (
        "import gc, io, contextlib, sys\n"
        "from monitor import cli\n"
        "sys.argv = ['tf-stack-monitor']\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    cli.main([])\n"
        "    before = gc.get_freeze_count()\n"
        "    code = cli.console()\n"
        "print(code, before, gc.get_freeze_count() > 0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert proc.stdout.split() == ["0", "0", "True"]
