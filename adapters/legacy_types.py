"""How the monolith writes values, and what they are: the scalar rules every adapter shares.

The legacy schema stores money as strings of cents, dates as ``YYYYMMDD``
strings, booleans as ``'Y'``/``'N'`` and "none" as a blank string; the services
use ``Decimal``, ``date``, ``bool`` and NULL. Each rule is a pair of pure
functions; a value that does not fit raises ``ValueError`` saying what it is.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

_YYYYMMDD = re.compile(r"^\d{8}$")
_CENTS = re.compile(r"^\d{1,12}$")
CENT = Decimal("0.01")


def yyyymmdd_to_date(value: str) -> dt.date:
    """``"20190304"`` -> ``date(2019, 3, 4)``."""
    if not isinstance(value, str) or not _YYYYMMDD.match(value):
        raise ValueError(f"{value!r} is not a YYYYMMDD date")
    return dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))


def date_to_yyyymmdd(value: dt.date) -> str:
    return value.strftime("%Y%m%d")


def iso_to_yyyymmdd(value: str) -> str:
    """``"2019-03-04"`` (the services' JSON) -> ``"20190304"``."""
    return date_to_yyyymmdd(dt.date.fromisoformat(value))


def cents_to_decimal(cents: str) -> Decimal:
    """``"250050"`` -> ``Decimal("2500.50")`` (the legacy columns are strings of cents)."""
    if not isinstance(cents, str) or not _CENTS.match(cents):
        raise ValueError(f"{cents!r} is not a string of cents")
    return (Decimal(cents) / 100).quantize(CENT)


def decimal_to_cents(amount: Decimal | str, *, whole_units: bool = False) -> str:
    """``Decimal("2500.50")`` or ``"2500.50"`` -> ``"250050"``.

    ``whole_units=True`` reproduces the first customers adapter's mistake (it took
    ``credit_limit`` for whole currency units, as the v2 API draft documented, and
    rounded the cents away); it is kept so the demo can show shadow comparison
    finding it.
    """
    try:
        value = Decimal(amount)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"{amount!r} is not a decimal amount") from None
    if whole_units:
        value = value.quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return str(int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)))


def flag_to_bool(flag: str) -> bool:
    if flag not in ("Y", "N"):
        raise ValueError(f"{flag!r} is not Y or N")
    return flag == "Y"


def bool_to_flag(value: bool) -> str:
    return "Y" if value else "N"


def blank_to_none(value: str | None) -> str | None:
    return value if value else None


def none_to_blank(value: str | None) -> str:
    return value or ""


def lower_keys(row: Mapping[str, Any]) -> dict[str, Any]:
    """Column names as PostgreSQL folds them (``CUST_ID`` -> ``cust_id``), whatever the source."""
    return {key.lower(): value for key, value in row.items()}
