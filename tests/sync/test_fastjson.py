"""fastjson: the schema-once parse gives exactly what a plain parse gives, for text and
bytes, and a record whose schema itself contains the cut marker is still read right."""

from __future__ import annotations

import json

from strangler.sync.fastjson import load_document

SCHEMA = {"type": "struct", "fields": [{"type": "int32", "field": "id"}], "name": "t.Value"}


def record(payload: object, schema: object = SCHEMA) -> str:
    return json.dumps({"schema": schema, "payload": payload}, separators=(",", ":"))


def test_same_result_as_json_and_the_schema_object_is_shared() -> None:
    first, second = record({"id": 1}), record({"id": 2, "payload": {"x": 1}})
    a, b = load_document(first), load_document(second)
    assert load_document(second.encode()) == b
    assert a == json.loads(first) and b == json.loads(second)
    assert a["schema"] is b["schema"]  # parsed once


def test_a_marker_inside_the_schema_falls_back_to_a_full_parse() -> None:
    tricky = {**SCHEMA, "parameters": {"a": "1", "payload": "2"}}
    text = record({"id": 3}, tricky)
    assert ',"payload":' in text.partition('"payload":{"id"')[0]
    assert load_document(text) == json.loads(text)


def test_documents_without_a_schema_and_bad_json() -> None:
    assert load_document('{"op":"c"}') == {"op": "c"}
    try:
        load_document('{"schema":{},"payload":{')
    except ValueError:
        pass
    else:  # pragma: no cover
        raise AssertionError("bad JSON must raise ValueError")
