"""Row adapters used by the CDC tests: one legacy ``customers`` row -> two service tables."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from strangler.sync.model import ChangeEvent, RowDelete, RowUpsert, RowWrite

STATUS = {"A": "active", "I": "inactive"}

SERVICE_DDL = (
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, status TEXT,"
    " balance NUMERIC(12, 2), note TEXT)",
    "CREATE TABLE addresses (customer_id INTEGER PRIMARY KEY, city TEXT)",
)
MONOLITH_DDL = (
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, nm TEXT, st TEXT, cents TEXT,"
    " city TEXT, note TEXT)"
)


class CustomerRows:
    """customers(id, nm, st, cents, city, note) -> customers(...) + addresses(customer_id, city).

    ``st`` must be A or I; anything else raises (the test's poison)."""

    status = STATUS

    def map(self, event: ChangeEvent) -> Sequence[RowWrite]:
        ident = event.key["id"]
        if event.op == "d":
            return [
                RowDelete("addresses", {"customer_id": ident}),
                RowDelete("customers", {"id": ident}),
            ]
        row = event.after or {}
        values: dict[str, object] = {}
        if "nm" in row:
            values["name"] = row["nm"]
        if "st" in row:
            values["status"] = self.status[row["st"]]
        if "cents" in row:
            values["balance"] = Decimal(int(row["cents"])).scaleb(-2)
        if "note" in row:
            values["note"] = row["note"]
        writes: list[RowWrite] = [RowUpsert("customers", {"id": ident}, values)]
        if "city" in row:
            if row["city"]:
                writes.append(RowUpsert("addresses", {"customer_id": ident}, {"city": row["city"]}))
            else:
                writes.append(RowDelete("addresses", {"customer_id": ident}))
        return writes


class FixedCustomerRows(CustomerRows):
    """The adapter after the fix: a third status code is known."""

    status = {**STATUS, "X": "suspended"}
