"""Support bundles: load, reject bad files, redact."""

import json

import pytest
import scenarios

from monitor.model import Report
from monitor.report import render_json
from monitor.snapshot import SnapshotError, load_inventory, redact, snapshot_document


def document():
    return snapshot_document(render_json(Report(inventory=scenarios.linux_tf221_pip())))


def test_snapshot_round_trips_the_inventory():
    assert load_inventory(json.dumps(document())) == scenarios.linux_tf221_pip()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "no 'inventory' object"),
        ('{"inventory": {"schema": 99}}', "newer than this"),
        ('{"inventory": {"schema": 1, "host": "oops"}}', "malformed inventory"),
    ],
)
def test_bad_snapshots_are_refused_with_a_reason(text, message):
    with pytest.raises(SnapshotError, match=message):
        load_inventory(text)


def test_redact_replaces_user_home_and_host_everywhere():
    doc = document()
    clean = redact(doc, user="ada", home="/home/ada", hostname="ws1")
    text = json.dumps(clean)
    assert "/home/ada" not in text and '"ws1"' not in text
    assert "<home>/venvs/tf/bin/python" in text
    assert '"<host>"' in text and '"<user>"' in text
    assert load_inventory(text).host.user == "<user>"


def test_redact_keeps_words_that_merely_contain_the_user_name():
    assert redact("canada /home/ada/x ada", "ada", "/home/ada", "") == "canada <home>/x <user>"
