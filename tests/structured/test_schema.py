"""schema.check_schema: every keyword enforced or refused by name; size and depth bounded (no engine needed)."""
from __future__ import annotations

import time

import pytest

from edge_sdk.runtime.structured.schema import MAX_DEPTH, check_schema, embed

PERSON = {"type": "object", "title": "Person", "description": "d",
          "properties": {"name": {"type": "string", "maxLength": 20, "examples": ["Ann"]},
                         "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}, "maxItems": 3},
                         "kind": {"anyOf": [{"const": 1}, {"type": "null"}], "default": None}},
          "required": ["name"], "additionalProperties": False, "$defs": {"Tag": {"enum": ["a", "b"]}}}


def test_a_pydantic_style_schema_passes():
    check_schema(PERSON)
    check_schema(True)
    check_schema({})


@pytest.mark.parametrize("schema, keyword", [
    ({"type": "string", "maxLenght": 3}, "maxLenght"),  # a typo would be silently ignored by JSON Schema
    ({"type": "object", "properties": {"a": {"type": "string", "foo": 1}}}, "foo"),
    ({"type": "array", "items": {"x-guidance": {"lenient": True}}}, "x-guidance"),  # engine options are not schema
    ({"not": {"type": "string"}}, "not"),
    ({"type": "array", "uniqueItems": True}, "uniqueItems"),
    ({"if": {"type": "string"}, "then": {"minLength": 1}}, "if"),
    ({"type": "string", "nullable": True}, "nullable"),
    ({"$defs": {"a": {"contains": {}}}, "$ref": "#/$defs/a"}, "contains"),
    ({"anyOf": [{"type": "object", "propertyNames": {"pattern": "a"}}]}, "propertyNames"),
])
def test_unknown_and_unenforceable_keywords_are_refused_by_name(schema, keyword):
    with pytest.raises(ValueError, match=f"'{keyword}'"):
        check_schema(schema)


def test_where_the_keyword_is_is_said():
    with pytest.raises(ValueError, match="/properties/a/properties/b/foo"):
        check_schema({"properties": {"a": {"properties": {"b": {"foo": 1}}}}})


def test_data_is_not_read_as_schema():
    # Keys inside enum/const/default values are data: a property called "foo" or a const object is fine.
    check_schema({"enum": [{"foo": 1}], "const": {"not": 2}, "default": {"bar": 3},
                  "properties": {"foo": {"type": "string"}, "not": {"type": "integer"}}})


@pytest.mark.parametrize("schema, fragment", [
    ({"type": "strng"}, "'type'"),
    ({"required": "name"}, "'required'"),
    ({"properties": []}, "'properties'"),
    ({"anyOf": []}, "'anyOf'"),
    ({"maxLength": -1}, "'maxLength'"),
    ({"maxItems": True}, "'maxItems'"),
    ({"items": [{"type": "string"}]}, "subschema must be an object"),
    ("a string", "must be a JSON Schema object"),
    ({"enum": [float("nan")]}, "not JSON"),
    ({"enum": [object()]}, "not JSON"),
])
def test_malformed_values(schema, fragment):
    with pytest.raises(ValueError, match=fragment):
        check_schema(schema)


def test_deep_nesting_is_an_error_quickly():
    deep: dict = {"type": "string"}
    for _ in range(5000):  # far past Python's recursion limit
        deep = {"type": "object", "properties": {"a": deep}}
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="nested"):
        check_schema(deep)
    assert time.perf_counter() - t0 < 2.0
    ok: dict = {"type": "string"}
    for _ in range(MAX_DEPTH - 1):
        ok = {"type": "object", "properties": {"a": ok}}
    check_schema(ok)


def test_huge_schemas_are_refused_quickly():
    huge = {"type": "object", "properties": {f"p{i}": {"type": "string", "description": "x" * 200} for i in range(5000)}}
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="larger than|bytes of JSON"):
        check_schema(huge)
    many = {"anyOf": [{"const": i} for i in range(30000)]}
    with pytest.raises(ValueError):
        check_schema(many)
    assert time.perf_counter() - t0 < 2.0


def test_embed_keeps_references_working_under_a_new_root():
    jsonschema = pytest.importorskip("jsonschema")
    recursive = {"type": "object", "properties": {"child": {"$ref": "#"}, "tag": {"$ref": "#/$defs/Tag"}},
                 "$defs": {"Tag": {"enum": ["x"]}}, "additionalProperties": False}
    defs: dict = {}
    root = {"type": "object", "properties": {"a": embed(recursive, "tool-a", defs),
                                             "b": embed(PERSON, "tool-b", defs)}, "$defs": defs}
    good = {"a": {"child": {"child": {}, "tag": "x"}}, "b": {"name": "Ann", "tags": ["a"]}}
    jsonschema.validate(good, root)
    for bad in ({"a": {"child": {"tag": "y"}}}, {"a": {"child": {"extra": 1}}}, {"b": {"name": "A", "tags": ["c"]}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, root)
    assert PERSON["properties"]["tags"]["items"] == {"$ref": "#/$defs/Tag"}  # the caller's schema is not changed
    enum_data = embed({"enum": [{"$ref": "#/x"}]}, "d", defs)  # a "$ref" inside data stays data
    assert defs["d"] == {"enum": [{"$ref": "#/x"}]} and enum_data == {"$ref": "#/$defs/d"}


def test_shared_and_cyclic_python_objects_are_sized_before_serialising():
    deep: dict = {"type": "string"}
    for _ in range(40):  # 40 levels, each referring twice to the one below: 2**40 subschemas as JSON
        deep = {"anyOf": [deep, {"type": "array", "items": deep}]}
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="larger than"):
        check_schema(deep)
    cyclic: dict = {"type": "object", "properties": {}}
    cyclic["properties"]["self"] = cyclic
    with pytest.raises(ValueError, match="contains itself"):
        check_schema(cyclic)
    assert time.perf_counter() - t0 < 2.0


def test_too_many_properties_in_one_object():
    from edge_sdk.runtime.structured.schema import MAX_PROPERTIES

    props = {f"p{i}": {"type": "string"} for i in range(MAX_PROPERTIES + 1)}
    with pytest.raises(ValueError, match="at most 256 per object"):
        check_schema({"type": "object", "properties": props})
    check_schema({"type": "object", "properties": dict(list(props.items())[:MAX_PROPERTIES])})
