"""The customers bounded context's adapters: ``/api/customers`` and the ``CUSTOMER`` table.

In routes.yaml::

    adapter: adapters.customers:CustomerApi          # HTTP, per route
    sync.tables[].adapter: adapters.customers:CustomerRows   # CDC, per source table

``CustomerApi`` lets legacy clients keep calling ``/api/customers...`` while the
customers service answers ``/v2/customers...``: the request is moved and
translated, the answer is put back into exactly the monolith's JSON (field
names, codes, cents, ``YYYYMMDD``, blanks, paging envelope, error bodies), so a
client sees no change and a shadow comparison compares like with like.

``CustomerApiWholeUnits`` is the first draft of that adapter, kept on purpose:
it treats ``credit_limit`` as whole currency units and so answers
``CREDIT_LIMIT_CENTS: "250100"`` where the monolith says ``"250050"`` for about
a third of customers. Shadow mode finds it; switching the route to
``CustomerApi`` fixes it. ``CustomerRows`` is the data adapter: one legacy row
-> a ``customers`` row and its primary ``addresses`` row.

All rules come from ``adapters.customers_model``; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters import customers_model as model
from adapters.legacy_http import as_of_ts, item_id, legacy_error, legacy_query, move
from adapters.legacy_types import lower_keys
from strangler.errors import AdapterError, ChangeEventError
from strangler.message import HttpRequest, HttpResponse
from strangler.sync.model import ChangeEvent, RowDelete, RowUpsert, RowWrite

LEGACY_PREFIX = "/api/customers"
SERVICE_PREFIX = "/v2/customers"


class CustomerApi:
    """HTTP adapter: the legacy customer API served by the customers service."""

    whole_units = False
    """True only in the deliberately wrong first draft (see the module docstring)."""

    def request(self, request: HttpRequest) -> HttpRequest:
        collection = item_id(request, LEGACY_PREFIX) is None
        query = None
        if collection and request.method in ("GET", "HEAD"):
            query = model.legacy_query_to_service(legacy_query(request))
        moved = move(request, LEGACY_PREFIX, SERVICE_PREFIX, query)
        if request.method not in ("POST", "PUT") or not request.body:
            return moved
        try:
            body = request.json()
        except ValueError:
            return moved  # the service refuses it as bad_json, as the monolith would
        if not isinstance(body, dict):
            return moved
        return moved.with_json(model.legacy_json_to_service(body))

    def response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        error = legacy_error(
            response,
            not_found="CUSTOMER NOT FOUND",
            fields=model.NEW_TO_LEGACY_FIELD,
            params=model.NEW_TO_LEGACY_PARAM,
        )
        if error is not None:
            return error
        if response.status >= 300 or not response.is_json or not response.body:
            return response  # HEAD, redirects and non-JSON failures have nothing to reshape
        try:
            data: Any = response.json()
            if item_id(request, LEGACY_PREFIX) is not None or request.method != "GET":
                return response.with_json(self._customer(data))
            query = legacy_query(request)
            return response.with_json(
                {
                    "CUSTOMERS": [self._customer(c) for c in data["items"]],
                    "TOTAL_CNT": data["total"],
                    "PAGE_NO": int(query.get("page", "1")),
                    "PAGE_SZ": data["limit"],
                    "AS_OF_TS": as_of_ts(),
                }
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AdapterError(
                f"customers service answer is not a customer or a page of them: {exc!r}"
            ) from exc

    def _customer(self, data: Any) -> dict[str, Any]:
        return model.service_json_to_legacy(data, whole_units=self.whole_units)


class CustomerApiWholeUnits(CustomerApi):
    """The first draft of ``CustomerApi``: rounds ``credit_limit`` to whole units (a bug)."""

    whole_units = True


class CustomerRows:
    """Data adapter: a legacy ``CUSTOMER`` change -> ``customers`` and ``addresses`` writes.

    Upserts write the customer before its address (the address references it);
    deletes remove the address first. An all-blank legacy address deletes the
    service's primary address. A truncate cannot be mapped row by row and is
    refused (dead-lettered) so it gets a person's attention.

    ``reverse`` is the way back, used once the customers service owns the context:
    a ``customers`` change updates the legacy row's customer columns, a primary
    ``addresses`` change its address columns (other kinds have no room in the
    legacy row and are left out); deleting the primary address blanks them.
    """

    reverse_tables = ("customers", "addresses")
    """The service tables whose changes flow back into ``CUSTOMER``."""

    def map(self, event: ChangeEvent) -> Sequence[RowWrite]:
        if event.op == "t":
            raise ChangeEventError(f"{event.table}: truncate is not replicated; resync instead")
        row = lower_keys({**(event.before or {}), **event.key, **(event.after or {})})
        try:
            cust_id = int(row["cust_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ChangeEventError(f"{event.table}: change without a usable CUST_ID") from exc
        address_key = {"customer_id": cust_id, "kind": model.PRIMARY}
        if event.op == "d":
            return [RowDelete("addresses", address_key), RowDelete("customers", {"id": cust_id})]
        try:
            values = model.legacy_row_to_customer(row)
            address = model.legacy_row_to_address(row)
        except (KeyError, ValueError) as exc:
            raise ChangeEventError(f"{event.table} CUST_ID={cust_id}: {exc}") from exc
        customer = RowUpsert("customers", {"id": cust_id}, values)
        if address is None:
            return [customer, RowDelete("addresses", address_key)]
        return [customer, RowUpsert("addresses", address_key, address)]

    def reverse(self, event: ChangeEvent) -> Sequence[RowWrite]:
        if event.op == "t":
            raise ChangeEventError(f"{event.table}: truncate is not synced back; resync instead")
        table = event.table.rpartition(".")[2]
        row = {**(event.before or {}), **event.key, **(event.after or {})}
        try:
            if table == "customers":
                key = {"cust_id": int(row["id"])}
                if event.op == "d":
                    return [RowDelete("customer", key)]
                return [RowUpsert("customer", key, model.customer_to_legacy_row(row))]
            if table == "addresses":
                if row.get("kind") != model.PRIMARY:
                    return []
                key = {"cust_id": int(row["customer_id"])}
                address = None if event.op == "d" else row
                return [RowUpsert("customer", key, model.address_to_legacy_row(address))]
        except (KeyError, TypeError, ValueError) as exc:
            raise ChangeEventError(f"{event.table} {dict(event.key)}: {exc}") from exc
        raise ChangeEventError(f"{event.table} is not customers or addresses")
