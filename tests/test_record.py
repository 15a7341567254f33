"""monitor.record: frozen records, and the start-up cost they exist to avoid."""

from __future__ import annotations

import copy
import json
import pickle
import subprocess
import sys

import pytest

from monitor.record import FrozenInstanceError, field, fields, is_record, record, replace


@record
class Point:
    """A record with a required field, plain defaults and a default factory."""

    x: int
    y: int = 0
    tags: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)

    @property
    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)


@record
class Other:
    x: int
    y: int = 0
    tags: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)


def test_fields_are_set_by_position_keyword_or_default():
    point = Point(1, tags=("a",))
    assert (point.x, point.y, point.tags, point.notes) == (1, 0, ("a",), [])
    assert Point(3, -4).norm1 == 7
    assert fields(Point) == fields(point) == ("x", "y", "tags", "notes")


def test_a_default_factory_makes_a_fresh_value_for_each_record():
    first, second = Point(1), Point(1)
    first.notes.append("mine")
    assert second.notes == []
    assert "notes" not in vars(Point)  # the factory is not left on the class


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "Point() missing required argument: 'x'"),
        ((1, 2, (), [], 5), {}, "Point() takes 4 positional arguments but 5 were given"),
        ((1,), {"x": 2}, "Point() got multiple values for argument 'x'"),
        ((1,), {"z": 2}, "Point() got an unexpected keyword argument 'z'"),
    ],
)
def test_wrong_arguments_are_told_like_python_tells_them(args, kwargs, message):
    with pytest.raises(TypeError) as caught:
        Point(*args, **kwargs)
    assert str(caught.value) == message


def test_records_are_frozen():
    point = Point(1)
    with pytest.raises(FrozenInstanceError, match="cannot assign to field 'x'"):
        point.x = 2
    with pytest.raises(FrozenInstanceError, match="cannot delete field 'y'"):
        del point.y
    with pytest.raises(AttributeError):  # FrozenInstanceError is an AttributeError
        point.new = 1
    assert point.x == 1


def test_equality_and_hash_follow_the_fields_and_the_class():
    assert Point(1, 2) == Point(1, 2) and Point(1, 2) != Point(2, 1)
    assert Point(1, 2) != Other(1, 2)  # same fields, another class
    assert Point(1, 2) != (1, 2, (), [])
    frozen = {Other(1, 2, ("a",), notes=None), Other(1, 2, ("a",), notes=None)}
    assert len(frozen) == 1
    with pytest.raises(TypeError):  # a list field makes it unhashable, like a tuple of lists
        hash(Point(1))


def test_repr_names_every_field():
    assert repr(Point(1, tags=("a",))) == "Point(x=1, y=0, tags=('a',), notes=[])"
    assert Point.__repr__.__qualname__ == "Point.__repr__"


def test_replace_copies_with_changes_and_checks_them():
    point = Point(1, 2, ("a",))
    moved = replace(point, y=5)
    assert moved == Point(1, 5, ("a",)) and point.y == 2
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        replace(point, z=1)
    with pytest.raises(TypeError, match="not a record: dict"):
        replace({"x": 1}, x=2)


def test_is_record_tells_records_from_other_values():
    assert is_record(Point) and is_record(Point(1))
    assert not is_record(object()) and not is_record({"x": 1})


def test_records_survive_pickle_and_deepcopy():
    point = Point(1, 2, ("a",), ["n"])
    assert pickle.loads(pickle.dumps(point)) == point
    clone = copy.deepcopy(point)
    assert clone == point and clone.notes is not point.notes


def test_a_field_without_default_after_one_with_is_refused():
    with pytest.raises(TypeError, match="field 'y' without a default follows one with"):

        @record
        class Bad:
            x: int = 0
            y: int


def test_a_record_cannot_extend_another():
    with pytest.raises(TypeError, match="cannot inherit"):

        @record
        class Point3(Point):
            z: int = 0


def test_the_check_never_imports_dataclasses(tmp_path):
    """The reason records exist: `check` is a short process, and `dataclasses` (with the
    inspect, dis and tokenize it imports) cost it a third of its run. Guard the whole path:
    CLI, probes, rules, report."""
    code = (
        "import sys, io, contextlib\n"
        "from monitor.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = main(['check', '--json', '--root', {str(tmp_path)!r},"
        " '--python', sys.executable])\n"
        "print(code, sorted(m for m in ('dataclasses', 'inspect') if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    exit_code, imported = proc.stdout.split(" ", 1)
    assert exit_code in ("0", "1", "2"), proc.stderr  # a verdict, not a failed check
    assert json.loads(imported.replace("'", '"')) == []
