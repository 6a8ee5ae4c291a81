"""The catalog bounded context's adapters: ``/api/products`` and the ``PRODUCT`` table.

    adapter: adapters.catalog:ProductApi          # HTTP: legacy product API <- catalog service
    sync.tables[].adapter: adapters.catalog:ProductRows   # CDC: PRODUCT -> products

Products are read-only on the new side, so only GETs are translated; the rules
come from ``adapters.catalog_model``. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters import catalog_model as model
from adapters.legacy_http import as_of_ts, item_id, legacy_error, legacy_query, move
from adapters.legacy_types import lower_keys
from strangler.errors import AdapterError, ChangeEventError
from strangler.message import HttpRequest, HttpResponse
from strangler.sync.model import ChangeEvent, RowDelete, RowUpsert, RowWrite

LEGACY_PREFIX = "/api/products"
SERVICE_PREFIX = "/v2/products"


class ProductApi:
    """HTTP adapter: the legacy product API served by the catalog service."""

    def request(self, request: HttpRequest) -> HttpRequest:
        query = None
        if item_id(request, LEGACY_PREFIX) is None:
            query = model.legacy_query_to_service(legacy_query(request))
        return move(request, LEGACY_PREFIX, SERVICE_PREFIX, query)

    def response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        error = legacy_error(
            response, not_found="PRODUCT NOT FOUND", fields={}, params=model.NEW_TO_LEGACY_PARAM
        )
        if error is not None:
            return error
        if response.status >= 300 or not response.is_json or not response.body:
            return response  # HEAD, redirects and non-JSON failures have nothing to reshape
        try:
            data: Any = response.json()
            if item_id(request, LEGACY_PREFIX) is not None:
                return response.with_json(model.service_json_to_legacy(data))
            items = [model.service_json_to_legacy(p) for p in data["items"]]
            return response.with_json(
                {"PRODUCTS": items, "TOTAL_CNT": data["total"], "AS_OF_TS": as_of_ts()}
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AdapterError(f"catalog service answer is not a product list: {exc!r}") from exc


class ProductRows:
    """Data adapter: a legacy ``PRODUCT`` change -> a ``products`` write."""

    def map(self, event: ChangeEvent) -> Sequence[RowWrite]:
        if event.op == "t":
            raise ChangeEventError(f"{event.table}: truncate is not replicated; resync instead")
        row = lower_keys({**(event.before or {}), **event.key, **(event.after or {})})
        try:
            key = {"id": int(row["prod_id"])}
        except (KeyError, TypeError, ValueError) as exc:
            raise ChangeEventError(f"{event.table}: change without a usable PROD_ID") from exc
        if event.op == "d":
            return [RowDelete("products", key)]
        try:
            return [RowUpsert("products", key, model.legacy_row_to_product(row))]
        except (KeyError, ValueError) as exc:
            raise ChangeEventError(f"{event.table} PROD_ID={key['id']}: {exc}") from exc
