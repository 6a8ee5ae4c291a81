"""The product translation between the monolith's ``PRODUCT`` and the catalog service.

=====================  ========================  ==============================
legacy (monolith)      new (catalog service)     rule
=====================  ========================  ==============================
``PROD_ID`` int        ``id`` int                same value
``PROD_SKU``           ``sku``                   same
``PROD_NM``            ``name``                  same
``PRICE_CENTS``        ``price`` decimal         ``"1999"`` <-> ``"19.99"``
``ACTIVE_FLG`` Y / N   ``active`` bool           flag
``CATEGORY_CD`` HW...  ``category`` hardware...  code table
=====================  ========================  ==============================

Shared by ``adapters.catalog.ProductApi`` and ``ProductRows``. Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.legacy_types import (
    bool_to_flag,
    cents_to_decimal,
    decimal_to_cents,
    flag_to_bool,
    lower_keys,
)

CATEGORY_TO_NEW = {"HW": "hardware", "GD": "garden", "KT": "kitchen", "TY": "toys"}
CATEGORY_TO_LEGACY = {new: old for old, new in CATEGORY_TO_NEW.items()}
NEW_TO_LEGACY_PARAM = {"category": "category"}


def category_to_new(code: str) -> str:
    try:
        return CATEGORY_TO_NEW[code]
    except KeyError:
        raise ValueError(f"CATEGORY_CD {code!r} is not one of {sorted(CATEGORY_TO_NEW)}") from None


def category_to_legacy(category: str) -> str:
    try:
        return CATEGORY_TO_LEGACY[category]
    except KeyError:
        raise ValueError(f"category {category!r} has no legacy code") from None


def legacy_row_to_product(row: Mapping[str, Any]) -> dict[str, Any]:
    """A legacy ``PRODUCT`` row (any key case) -> the ``products`` table's values."""
    r = lower_keys(row)
    return {
        "sku": r["prod_sku"],
        "name": r["prod_nm"],
        "price": cents_to_decimal(r["price_cents"]),
        "active": flag_to_bool(r["active_flg"]),
        "category": category_to_new(r["category_cd"]),
    }


def service_json_to_legacy(product: Mapping[str, Any]) -> dict[str, Any]:
    """The service's product JSON -> the monolith's product JSON, field for field."""
    return {
        "PROD_ID": product["id"],
        "PROD_SKU": product["sku"],
        "PROD_NM": product["name"],
        "PRICE_CENTS": decimal_to_cents(product["price"]),
        "ACTIVE_FLG": bool_to_flag(bool(product["active"])),
        "CATEGORY_CD": category_to_legacy(product["category"]),
    }


def legacy_query_to_service(query: Mapping[str, str]) -> dict[str, str]:
    """``?category=KT`` -> ``?category=kitchen``; an unknown code becomes ``""``, which the
    service refuses as the monolith does (``kitchen`` itself must not slip through)."""
    if "category" not in query:
        return {}
    return {"category": CATEGORY_TO_NEW.get(query["category"], "")}
