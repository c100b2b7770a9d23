"""JSON Schemas from requests: bounded, and every keyword either enforced or refused by name.

JSON Schema lets a validator ignore keywords it does not know, and grammar engines do the same: a schema
with a typo (``"maxLenght"``) or an unsupported keyword (``"not"``, ``"uniqueItems"``) would be silently
weaker than the caller believes. Here a keyword is one of three things:

- enforced by the grammar (``ENFORCED``);
- an annotation that never changes which documents are valid (``ANNOTATIONS``: titles, descriptions ...);
- anything else: a ValueError naming the keyword and where it is (``/properties/age``).

Size and depth are bounded before the engine sees the schema, so a hostile schema costs milliseconds.
"""
from __future__ import annotations

import json
from typing import Any

__all__ = ["check_schema", "embed", "closed", "JSON_OPTIONS", "MAX_SCHEMA_BYTES", "MAX_DEPTH", "MAX_NODES"]

MAX_SCHEMA_BYTES = 256 * 1024  # of the schema as JSON text; OpenAI's own limits are smaller
MAX_DEPTH = 48  # nested schema objects (properties of properties of items ...)
MAX_NODES = 5_000  # schema objects in all
# Properties of one object. Optional ones multiply the grammar (any subset, in order): measured here, 2,000
# optional properties took ~10 s to compile and ~0.4 s per token mask; 256 take ~0.2 s and < 1 ms.
MAX_PROPERTIES = 256

# How the JSON is spelled: no free whitespace (a small model can otherwise loop on newlines), and the
# separators of Python's json.dumps, so `{"a": 1, "b": [2, 3]}` is the one accepted form of a document.
JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": ", "lenient": False,
                "coerce_one_of": False}

ENFORCED = frozenset({
    "type", "enum", "const", "properties", "required", "additionalProperties", "patternProperties",
    "minProperties", "maxProperties", "items", "prefixItems", "minItems", "maxItems", "anyOf", "oneOf", "allOf",
    "$ref", "$defs", "definitions", "pattern", "minLength", "maxLength", "format", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
})
ANNOTATIONS = frozenset({
    "title", "description", "default", "examples", "$schema", "$id", "$anchor", "$comment", "deprecated",
    "readOnly", "writeOnly", "contentEncoding", "contentMediaType",
    # OpenAPI's hint that says which oneOf/anyOf branch a document takes; the branches themselves are enforced
    "discriminator",
})
# Real JSON Schema keywords the grammar cannot enforce, with what to use instead.
UNSUPPORTED = {
    "not": "a negation cannot be turned into a grammar",
    "if": "conditional schemas are not supported; use anyOf",
    "then": "conditional schemas are not supported; use anyOf",
    "else": "conditional schemas are not supported; use anyOf",
    "uniqueItems": "uniqueness cannot be enforced while generating",
    "contains": "use items or prefixItems",
    "minContains": "use items or prefixItems",
    "maxContains": "use items or prefixItems",
    "propertyNames": "use patternProperties with additionalProperties: false",
    "dependentRequired": "use anyOf over the allowed shapes",
    "dependentSchemas": "use anyOf over the allowed shapes",
    "dependencies": "use anyOf over the allowed shapes",
    "unevaluatedProperties": "use additionalProperties",
    "unevaluatedItems": "use items",
    "additionalItems": "use items with prefixItems (JSON Schema 2020-12)",
    "$dynamicRef": "use $ref",
    "$dynamicAnchor": "use $ref",
    "$recursiveRef": "use $ref",
    "$recursiveAnchor": "use $ref",
    "$vocabulary": "custom vocabularies are not supported",
    "nullable": "an OpenAPI keyword; write type: [\"string\", \"null\"] or anyOf with {\"type\": \"null\"}",
}
# Keywords whose value holds subschemas, and how: a dict of name -> schema, a list of schemas, or one schema.
_MAP_OF_SCHEMAS = ("properties", "patternProperties", "$defs", "definitions")
_LIST_OF_SCHEMAS = ("anyOf", "oneOf", "allOf", "prefixItems")
_ONE_SCHEMA = ("items", "additionalProperties")
_TYPES = {"string", "number", "integer", "boolean", "object", "array", "null"}


def check_schema(schema: Any, what: str = "schema") -> None:
    """Raise ValueError unless `schema` is a JSON Schema this engine enforces completely (see the module doc).

    `what` names the schema in messages (e.g. "response_format.json_schema.schema", "tool 'get_weather'")."""
    if isinstance(schema, bool):
        return  # true (anything) / false (nothing) are schemas too
    if not isinstance(schema, dict):
        raise ValueError(f"{what} must be a JSON Schema object, got {type(schema).__name__}")
    # Sized before json.dumps: a Python object can share one sub-dict many times (a 40-level DAG is 2**40
    # nodes as JSON) or contain itself, and serialising that is the denial of service.
    if _too_big(schema, MAX_SCHEMA_BYTES):
        raise ValueError(f"{what} is larger than {MAX_SCHEMA_BYTES} bytes as JSON (or contains itself); simplify it")
    try:
        size = len(json.dumps(schema, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} is not JSON (the schema must be made of dicts, lists, strings, numbers, "
                         f"booleans and None): {e}") from None
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply (at most {MAX_DEPTH} levels)") from None
    if size > MAX_SCHEMA_BYTES:
        raise ValueError(f"{what} is {size} bytes of JSON; at most {MAX_SCHEMA_BYTES} (split the task or simplify "
                         "the schema)")
    # An explicit stack: a schema nested 10,000 deep is an error message, not a RecursionError.
    stack: list[tuple[Any, str, int]] = [(schema, "", 1)]
    nodes = 0
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, bool):
            continue
        if not isinstance(node, dict):
            raise ValueError(f"{what} at {path or '/'}: a subschema must be an object or a boolean, got "
                             f"{type(node).__name__}")
        nodes += 1
        if nodes > MAX_NODES:
            raise ValueError(f"{what} has more than {MAX_NODES} subschemas; simplify it")
        if depth > MAX_DEPTH:
            raise ValueError(f"{what} is nested more than {MAX_DEPTH} levels deep (at {path}); flatten it")
        for key, value in node.items():
            where = f"{path}/{key}"
            if not isinstance(key, str):
                raise ValueError(f"{what} at {path or '/'}: keys must be strings, got {key!r}")
            if key in UNSUPPORTED:
                raise ValueError(f"{what} uses the keyword {key!r} at {where}, which this engine cannot enforce: "
                                 f"{UNSUPPORTED[key]}")
            if key not in ENFORCED and key not in ANNOTATIONS:
                raise ValueError(f"{what} has the unknown keyword {key!r} at {where} (a typo? JSON Schema "
                                 "keywords are case-sensitive); it would be silently ignored, so it is refused")
            _check_value(key, value, where, what)
            if key in ("properties", "patternProperties") and len(value) > MAX_PROPERTIES:
                raise ValueError(f"{what} has {len(value)} {key} at {path or '/'}; at most {MAX_PROPERTIES} per object "
                                 "(optional properties multiply the grammar's size)")
            if key in _MAP_OF_SCHEMAS:
                stack += [(sub, f"{where}/{name}", depth + 1) for name, sub in value.items()]
            elif key in _LIST_OF_SCHEMAS:
                stack += [(sub, f"{where}/{i}", depth + 1) for i, sub in enumerate(value)]
            elif key in _ONE_SCHEMA:
                stack.append((value, where, depth + 1))


def _too_big(value: Any, budget: int) -> bool:
    """Whether `value` as JSON would exceed about `budget` characters, found without building the text and
    stopping as soon as it does (each container or scalar counts at least 2, strings their length)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            budget -= len(v) + 2
        elif isinstance(v, dict):
            budget -= 2 + 2 * len(v)
            for k, item in v.items():
                budget -= len(k) if isinstance(k, str) else 8
                stack.append(item)
        elif isinstance(v, (list, tuple)):
            budget -= 2 + len(v)
            stack.extend(v)
        else:
            budget -= 4
        if budget < 0:
            return True
    return False


def _check_value(key: str, value: Any, where: str, what: str) -> None:
    """The shape of a keyword's value (the engine's messages for these are less clear)."""
    def bad(expected: str):
        raise ValueError(f"{what}: {key!r} at {where} must be {expected}, got {json.dumps(value)[:80]}")

    if key in _MAP_OF_SCHEMAS and not isinstance(value, dict):
        bad("an object of name -> schema")
    if key in _LIST_OF_SCHEMAS and (not isinstance(value, list) or (key != "prefixItems" and not value)):
        bad("a non-empty list of schemas" if key != "prefixItems" else "a list of schemas")
    if key == "required" and (not isinstance(value, list) or not all(isinstance(x, str) for x in value)):
        bad("a list of property names")
    if key == "enum" and not isinstance(value, list):
        bad("a list")
    if key == "type":
        types = value if isinstance(value, list) else [value]
        if not types or not all(isinstance(t, str) and t in _TYPES for t in types):
            bad(f"one of {sorted(_TYPES)} or a list of them")
    if key in ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties") and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0):
        bad("an integer >= 0")
    if key in ("pattern", "format", "$ref") and not isinstance(value, str):
        bad("a string")


def _subschemas_mapped(node: dict, walk) -> dict:
    """A copy of the schema object `node` with `walk` applied to each of its subschemas (the values of the
    keywords above that hold schemas); data (enum, const, default ...) is copied as it is, never rewritten."""
    out = {}
    for key, value in node.items():
        if key in _MAP_OF_SCHEMAS and isinstance(value, dict):
            out[key] = {k: walk(v) for k, v in value.items()}
        elif key in _LIST_OF_SCHEMAS and isinstance(value, list):
            out[key] = [walk(v) for v in value]
        elif key in _ONE_SCHEMA:
            out[key] = walk(value)
        else:
            out[key] = value
    return out


def embed(schema: dict | bool, name: str, defs: dict) -> dict:
    """`schema` for use inside a larger one: stored whole as ``defs[name]`` (the caller puts `defs` at the new
    root's ``$defs``) with its local references re-pointed there, and returned as ``{"$ref": "#/$defs/<name>"}``.

    A tool's parameters or a response schema written as a root (pydantic puts its models in ``$defs`` and
    refers to ``#/$defs/Model``; a recursive schema refers to ``#``) keeps its meaning when nested this way,
    and two tools' ``$defs`` cannot collide. `name` must be JSON-pointer safe (letters, digits, _ and -)."""
    if isinstance(schema, bool):
        defs[name] = schema
        return {"$ref": f"#/$defs/{name}"}
    base = f"#/$defs/{name}"

    def walk(node):
        if not isinstance(node, dict):
            return node
        out = _subschemas_mapped(node, walk)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            out["$ref"] = base + ref[1:]
        return out

    defs[name] = walk(schema)  # check_schema bounded the depth, so this recursion is bounded too
    return {"$ref": base}


def closed(schema: dict | bool) -> dict | bool:
    """`schema` with every object that lists its properties and says nothing of others closed to them
    (`additionalProperties: false`). Used for tool parameters: an argument the tool does not declare is a call
    the app cannot execute, and a small model copies words of the tool list into its arguments otherwise
    (SmolLM2 wrote {"minutes": 5, "type": "integer"}). The arguments still validate against the tool's own
    schema: closing only removes documents. An explicit additionalProperties / patternProperties is kept."""
    def walk(node):
        if not isinstance(node, dict):
            return node
        out = _subschemas_mapped(node, walk)
        if "properties" in out and "additionalProperties" not in out and "patternProperties" not in out:
            out["additionalProperties"] = False
        return out

    return walk(schema)
