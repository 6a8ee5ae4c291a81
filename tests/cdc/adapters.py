"""The row adapter the CDC tests map through: one legacy ``customers`` row -> two tables."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from strangler.sync.model import ChangeEvent, RowDelete, RowUpsert, RowWrite

STATUS = {"A": "active", "I": "inactive"}


class CustomerRows:
    """customers(id, nm, st, cents, city, note) -> customers(id, name, status, balance, note)
    + addresses(customer_id, city). Columns Debezium did not send are not written."""

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
            values["status"] = STATUS[row["st"]]
        if "cents" in row:
            values["balance"] = Decimal(int(row["cents"])).scaleb(-2)
        if "note" in row:
            values["note"] = row["note"]
        writes: list[RowWrite] = [RowUpsert("customers", {"id": ident}, values)]
        if "city" in row:
            writes.append(RowUpsert("addresses", {"customer_id": ident}, {"city": row["city"]}))
        return writes
