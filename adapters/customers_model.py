"""The customer translation between the monolith's legacy model and the customers service.

One place for every rule that says how a legacy ``CUSTOMER`` value reads in the
new model and back, shared by the HTTP adapter (``adapters.customers.CustomerApi``)
and the data adapter (``adapters.customers.CustomerRows``) so the two can never
disagree:

=======================  ==========================  ===============================
legacy (monolith)        new (customers service)     rule
=======================  ==========================  ===============================
``CUST_ID`` int          ``id`` int                  same value (ids are kept)
``CUST_NM``              ``name``                    same
``EMAIL_ADDR``           ``email``                   same
``STATUS_CD`` A / I      ``status`` active/inactive  code table
``CREATED_YYYYMMDD``     ``created_at`` ISO date     ``20190304`` <-> ``2019-03-04``
``PHONE_NO`` ``''``      ``phone`` null              blank means "none"
``ADDR_LINE1/CITY/ZIP``  ``addresses`` row (primary) all blank means "no address"
``CREDIT_LIMIT_CENTS``   ``credit_limit`` decimal    ``"250050"`` <-> ``"2500.50"``
=======================  ==========================  ===============================

The scalar rules (cents, dates, blanks) are in ``adapters.legacy_types``; this
module applies them to whole customer records. Pure functions only: no I/O, no
clock, nothing global that changes. Values that cannot be translated raise
``ValueError``; the HTTP side passes them through for the service to reject, the
data side turns the error into a dead-lettered change event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.legacy_types import (
    blank_to_none,
    cents_to_decimal,
    decimal_to_cents,
    iso_to_yyyymmdd,
    lower_keys,
    none_to_blank,
    yyyymmdd_to_date,
)

STATUS_TO_NEW = {"A": "active", "I": "inactive"}
STATUS_TO_LEGACY = {new: old for old, new in STATUS_TO_NEW.items()}

LEGACY_TO_NEW_FIELD = {
    "CUST_ID": "id",
    "CUST_NM": "name",
    "EMAIL_ADDR": "email",
    "STATUS_CD": "status",
    "CREATED_YYYYMMDD": "created_at",
    "PHONE_NO": "phone",
    "ADDR_LINE1": "address.line1",
    "ADDR_CITY": "address.city",
    "ADDR_ZIP": "address.zip",
    "CREDIT_LIMIT_CENTS": "credit_limit",
}
"""Legacy field -> the service field it becomes (service validation errors name these)."""
NEW_TO_LEGACY_FIELD = {new: old for old, new in LEGACY_TO_NEW_FIELD.items()}
NEW_TO_LEGACY_PARAM = {"offset": "page", "limit": "size", "status": "status"}
"""Service query parameter -> the legacy one it came from (for error messages)."""

LEGACY_ADDRESS = ("ADDR_LINE1", "ADDR_CITY", "ADDR_ZIP")
PRIMARY = "primary"
"""``addresses.kind`` of the one address the legacy model has room for."""


# ------------------------------------------------------------------ status codes


def status_to_new(code: str) -> str:
    try:
        return STATUS_TO_NEW[code]
    except KeyError:
        raise ValueError(f"STATUS_CD {code!r} is not A or I") from None


def status_to_legacy(status: str) -> str:
    try:
        return STATUS_TO_LEGACY[status]
    except KeyError:
        raise ValueError(f"status {status!r} is not active or inactive") from None


# ------------------------------------------------------------------ whole records


def legacy_row_to_customer(row: Mapping[str, Any]) -> dict[str, Any]:
    """A legacy ``CUSTOMER`` row (any key case) -> the ``customers`` table's values.

    Raises ValueError naming the column that cannot be translated.
    """
    r = lower_keys(row)
    return {
        "name": r["cust_nm"],
        "email": r["email_addr"],
        "status": status_to_new(r["status_cd"]),
        "created_at": yyyymmdd_to_date(r["created_yyyymmdd"]),
        "phone": blank_to_none(r.get("phone_no")),
        "credit_limit": cents_to_decimal(r.get("credit_limit_cents") or "0"),
    }


def legacy_row_to_address(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The legacy address columns -> an ``addresses`` row's values, or None if all blank."""
    r = lower_keys(row)
    values = {
        "line1": r.get("addr_line1") or "",
        "city": r.get("addr_city") or "",
        "zip": r.get("addr_zip") or "",
    }
    return values if any(values.values()) else None


def customer_to_legacy_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ``customers`` row -> the legacy ``CUSTOMER`` row's customer columns (the way
    back of ``legacy_row_to_customer``; the address columns are left alone)."""
    created = row["created_at"]
    return {
        "cust_nm": row["name"],
        "email_addr": row["email"],
        "status_cd": status_to_legacy(row["status"]),
        "created_yyyymmdd": iso_to_yyyymmdd(str(created)[:10]),
        "phone_no": none_to_blank(row.get("phone")),
        "credit_limit_cents": decimal_to_cents(str(row["credit_limit"])),
    }


def address_to_legacy_row(row: Mapping[str, Any] | None) -> dict[str, Any]:
    """The primary ``addresses`` row (None: it was deleted) -> the legacy address columns."""
    return {
        "addr_line1": row["line1"] if row else "",
        "addr_city": row["city"] if row else "",
        "addr_zip": row["zip"] if row else "",
    }


def service_json_to_legacy(
    customer: Mapping[str, Any], *, whole_units: bool = False
) -> dict[str, Any]:
    """The service's customer JSON -> the monolith's customer JSON, field for field."""
    address = next(
        (a for a in customer.get("addresses") or () if a.get("kind") == PRIMARY),
        None,
    )
    return {
        "CUST_ID": customer["id"],
        "CUST_NM": customer["name"],
        "EMAIL_ADDR": customer["email"],
        "STATUS_CD": status_to_legacy(customer["status"]),
        "CREATED_YYYYMMDD": iso_to_yyyymmdd(customer["created_at"]),
        "PHONE_NO": none_to_blank(customer.get("phone")),
        "ADDR_LINE1": address["line1"] if address else "",
        "ADDR_CITY": address["city"] if address else "",
        "ADDR_ZIP": address["zip"] if address else "",
        "CREDIT_LIMIT_CENTS": decimal_to_cents(customer["credit_limit"], whole_units=whole_units),
    }


def legacy_json_to_service(body: Mapping[str, Any]) -> dict[str, Any]:
    """A legacy POST/PUT body -> the service's body; only the fields present.

    A value the monolith would refuse becomes one the service refuses too
    (``None`` where the service needs a value, the raw value where its check is
    the same), so the client gets the monolith's 400 for the same field.
    Passing ``"active"`` or ``"1.5"`` through would be wrong: the service would
    accept them. Unknown fields are dropped (the monolith ignores them too).
    """
    out: dict[str, Any] = {}
    if "CUST_NM" in body:
        out["name"] = body["CUST_NM"]
    if "EMAIL_ADDR" in body:
        out["email"] = body["EMAIL_ADDR"]
    if "STATUS_CD" in body:
        code = body["STATUS_CD"]
        out["status"] = STATUS_TO_NEW.get(code) if isinstance(code, str) else None
    if "PHONE_NO" in body:
        phone = body["PHONE_NO"]
        out["phone"] = blank_to_none(phone) if isinstance(phone, str) or phone is None else phone
    # Only the parts sent: a PUT of ADDR_CITY alone must leave line1 and zip as they are.
    address = {
        part: body[name]
        for name, part in zip(LEGACY_ADDRESS, ("line1", "city", "zip"), strict=True)
        if name in body
    }
    if address:
        out["address"] = address
    if "CREDIT_LIMIT_CENTS" in body:
        try:
            out["credit_limit"] = str(cents_to_decimal(body["CREDIT_LIMIT_CENTS"]))
        except ValueError:
            out["credit_limit"] = None
    return out


def legacy_query_to_service(query: Mapping[str, str]) -> dict[str, str]:
    """``?page=2&size=20&status=A`` -> ``?offset=20&limit=20&status=active``.

    Values the monolith refuses become values the service refuses (for the same
    parameter): a non-number page passes through as the offset, an unknown status
    code becomes ``""``.
    """
    out: dict[str, str] = {}
    page, size = query.get("page", "1"), query.get("size", "50")
    if not page.isdigit():
        out["offset"] = page
    elif int(page) < 1:
        out["offset"] = "-1"
    else:
        out["offset"] = str((int(page) - 1) * int(size)) if size.isdigit() else "0"
    out["limit"] = size
    if "status" in query:
        out["status"] = STATUS_TO_NEW.get(query["status"], "")
    return out
