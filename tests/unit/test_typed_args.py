"""``awa.typed_args.ArgsCodec`` without a database: what each record shape rebuilds, and
that every mismatch is a ``ValidationError`` naming the field."""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Any, TypedDict

import pytest

import awa
from awa.typed_args import ArgsCodec


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Tag(TypedDict):
    name: str


@dataclasses.dataclass
class Shape:
    points: list[Point]
    path: tuple[Point, ...]
    by_name: dict[str, Point]
    tags: list[Tag]
    anchor: Point | None = None
    weight: Annotated[float, "kg"] = 1.0
    extra: Any = None


def test_nested_records_are_rebuilt() -> None:
    codec: ArgsCodec[Shape] = ArgsCodec(Shape)
    shape = codec.decode(
        {
            "points": [{"x": 1, "y": 2}],
            "path": [{"x": 3, "y": 4}],
            "by_name": {"a": {"x": 5, "y": 6}},
            "tags": [{"name": "t"}],
            "anchor": {"x": 7, "y": 8},
            "weight": 2,
            "extra": {"free": ["form"]},
        }
    )
    assert shape == Shape(
        [Point(1, 2)],
        (Point(3, 4),),
        {"a": Point(5, 6)},
        [{"name": "t"}],
        Point(7, 8),
        2,
        {"free": ["form"]},
    )
    assert codec.decode({"points": [], "path": [], "by_name": {}, "tags": []}).anchor is None


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ([], "expected a JSON object, got list"),
        ({"points": {}, "path": [], "by_name": {}, "tags": []}, "points: expected a JSON array"),
        (
            {"points": [{"x": "1", "y": 2}], "path": [], "by_name": {}, "tags": []},
            "points[]: do not fit Point: x: expected int, got str",
        ),
        (
            {"points": [], "path": [], "by_name": {"a": 1}, "tags": []},
            "by_name{}: do not fit Point: expected a JSON object, got int",
        ),
        (
            {"points": [], "path": [], "by_name": {}, "tags": [], "weight": "heavy"},
            "weight: expected float, got str",
        ),
        ({"points": [], "path": [], "by_name": {}, "tags": [{}]}, "missing field(s) name"),
    ],
)
def test_mismatches_name_the_field(data: Any, problem: str) -> None:
    with pytest.raises(awa.ValidationError, match=re.escape(problem)) as caught:
        ArgsCodec(Shape).decode(data)
    assert caught.value.field == "args"
    assert "do not fit Shape" in str(caught.value)


def test_post_init_checks_are_mismatches() -> None:
    @dataclasses.dataclass
    class Positive:
        n: int

        def __post_init__(self) -> None:
            if self.n <= 0:
                raise ValueError("n must be positive")

    with pytest.raises(awa.ValidationError, match="n must be positive"):
        ArgsCodec(Positive).decode({"n": 0})


def test_an_unresolvable_annotation_is_a_config_error_at_registration() -> None:
    @dataclasses.dataclass
    class Broken:
        other: NoSuchType  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(awa.ConfigError, match="cannot resolve its annotations"):
        ArgsCodec(Broken)


def test_a_dataclass_and_a_model_encode_as_json_objects() -> None:
    import pydantic

    class Model(pydantic.BaseModel):
        point: Point
        when: str

    params = awa.InsertParams("k", Model(point=Point(1, 2), when="now"))
    assert params.args_json == '{"point":{"x":1,"y":2},"when":"now"}'
    assert awa.InsertParams("k", Point(3, 4)).args_json == '{"x":3,"y":4}'
    with pytest.raises(awa.ValidationError, match="not JSON-serialisable"):
        awa.InsertParams("k", Point)  # the class, not an instance
