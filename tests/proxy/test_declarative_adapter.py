"""The declarative adapter on its own: path templates, renames, value maps, inversion."""

from __future__ import annotations

import json
from typing import Any

import pytest

from strangler.adapter import HttpAdapter, declarative_adapter, load_adapter
from strangler.config import DeclarativeAdapterConfig
from strangler.errors import AdapterError
from strangler.message import HttpRequest, HttpResponse, make_headers

JSON = make_headers({"Content-Type": "application/json"})


def adapter(spec: dict[str, Any]) -> HttpAdapter:
    return declarative_adapter(DeclarativeAdapterConfig.model_validate(spec))


def request(body: Any, **extra: Any) -> HttpRequest:
    return HttpRequest(headers=JSON, body=json.dumps(body).encode(), **extra)


def test_path_template_takes_the_route_params_and_keeps_the_query() -> None:
    a = adapter({"path": "/v2/customers/{id}/orders/{order}"})
    out = a.request(
        HttpRequest(path="/api/c/7/o/9", query="full=1", params={"id": "7", "order": "9"})
    )
    assert out.target == "/v2/customers/7/orders/9?full=1"


def test_a_template_naming_an_uncaptured_param_fails_the_request() -> None:
    with pytest.raises(AdapterError, match="'id'"):
        adapter({"path": "/v2/customers/{id}"}).request(HttpRequest(path="/x"))


def test_nested_renames_and_value_maps_round_trip_through_the_inverse() -> None:
    a = adapter(
        {
            "request": {
                "rename": {"name": "full_name", "address.zip": "address.postcode"},
                "values": {"status": {"A": "active", "I": "inactive"}},
            }
        }
    )
    sent = a.request(request({"name": "Ada", "status": "A", "address": {"zip": "SW1"}}))
    assert sent.json() == {"full_name": "Ada", "status": "active", "address": {"postcode": "SW1"}}
    back = a.response(sent, HttpResponse(headers=JSON, body=sent.body))
    assert back.json() == {"name": "Ada", "status": "A", "address": {"zip": "SW1"}}


def test_lists_of_records_are_reshaped_element_by_element() -> None:
    a = adapter({"response": {"rename": {"full_name": "name"}}})
    answer = HttpResponse(headers=JSON, body=b'[{"full_name":"a"},{"full_name":"b"}]')
    assert a.response(HttpRequest(), answer).json() == [{"name": "a"}, {"name": "b"}]
    nested = HttpResponse(headers=JSON, body=b'{"items":[{"full_name":"a"}]}')
    a2 = adapter({"response": {"rename": {"items.full_name": "items.name"}}})
    assert a2.response(HttpRequest(), nested).json() == {"items": [{"name": "a"}]}


def test_non_json_bodies_pass_through_untouched() -> None:
    a = adapter({"request": {"rename": {"a": "b"}}})
    plain = HttpRequest(body=b"not json")
    assert a.request(plain).body == b"not json"


def test_load_adapter_builds_declarative_and_import_path_forms() -> None:
    assert load_adapter(None) is None
    built = load_adapter(DeclarativeAdapterConfig.model_validate({"path": "/v2"}))
    assert isinstance(built, HttpAdapter)
    by_path = load_adapter("tests.proxy.sample_adapters:CustomerApi")
    assert isinstance(by_path, HttpAdapter)
    with pytest.raises(ValueError, match="not an adapter"):
        load_adapter("tests.proxy.rawhttp:status_of")
