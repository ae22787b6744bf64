"""Filter trees (contract §11.1) and the ?tag= query (§11.3)."""

from datetime import datetime

import pytest

from calor.domain.errors import BadRequest
from calor.domain.filters import Kind, Leaf, Node, Op, parse_filter, tags_any


def test_python_sdk_or_of_tags() -> None:
    f = parse_filter(
        {
            "operator": "Or",
            "filters": [
                {"field": "Tags", "operator": "Equal", "value": "a"},
                {"field": "Tags", "operator": "Equal", "value": "c"},
            ],
        }
    )
    assert f == Node(
        "Or",
        (Leaf("Tags", Kind.TAGS, Op.EQUAL, ("a",)), Leaf("Tags", Kind.TAGS, Op.EQUAL, ("c",))),
    )


def test_pascal_case_keys_and_csharp_values() -> None:
    f = parse_filter({"Operator": "in", "Field": "state", "Values": ["Success", "Failure"]})
    assert f == Leaf("State", Kind.TEXT, Op.IN, ("Success", "Failure"))


def test_dates_accept_seven_fraction_digits_and_z() -> None:
    f = parse_filter(
        {
            "field": "CreationDate",
            "operator": "GreaterThan",
            "value": "2026-01-02T03:04:05.1234567Z",
        }
    )
    assert isinstance(f, Leaf)
    assert f.values == (datetime(2026, 1, 2, 3, 4, 5, 123456),)


def test_like_strips_slashes() -> None:
    f = parse_filter({"field": "Name", "operator": "Like", "value": "/^render-/"})
    assert isinstance(f, Leaf) and f.values == ("^render-",)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"field": "Nope", "operator": "Equal", "value": 1}, "not filterable"),
        ({"field": "Name", "operator": "Sounds", "value": 1}, "operator"),
        ({"operator": "And"}, "filters"),
        ({"field": "InstanceCount", "operator": "Equal", "value": "many"}, "number"),
        ({"field": "CreationDate", "operator": "LessThan", "value": "yesterday"}, "date"),
        ({"field": "Name", "operator": "Like", "value": "/(/"}, "regex"),
        ({"field": "Tags", "operator": "LessThan", "value": "a"}, "Tags"),
        ("not an object", "object"),
    ],
)
def test_bad_filters_say_what_is_wrong(raw: object, fragment: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse_filter(raw)
    assert fragment in err.value.message


def test_depth_is_bounded() -> None:
    node: dict[str, object] = {"field": "Name", "operator": "Equal", "value": "x"}
    for _ in range(40):
        node = {"operator": "And", "filters": [node]}
    with pytest.raises(BadRequest, match="deeper"):
        parse_filter(node)


def test_tag_query_splits_commas_and_dedups() -> None:
    assert tags_any(["t1", "t2,t3", "t1"]) == Leaf("Tags", Kind.TAGS, Op.IN, ("t1", "t2", "t3"))
    assert tags_any([]) is None
    assert tags_any([","]) is None
