"""Deterministic sample data for the monolith: the same seed always gives the same shop.

``seed(db_url, customers=2000, orders=5000, products=200, seed=42)`` creates the
schema if needed and fills an EMPTY database (it refuses one that already has
customers, so a rerun never doubles the data). Everything is drawn from one
``random.Random(seed)``; dates come from a fixed range, never from the clock.

The data is shaped to exercise the migration: about a third of credit limits
have cents (the rounding mismatch the demo finds), some customers have no phone
or no address (blank legacy columns that become NULL / no row in the service),
some are inactive.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, insert, select

from sample_monolith import db

FIRST = [
    "Ada",
    "Alan",
    "Barbara",
    "Brian",
    "Carla",
    "Chen",
    "Dana",
    "Diego",
    "Elena",
    "Emil",
    "Farah",
    "Felix",
    "Grace",
    "Hugo",
    "Ines",
    "Ivan",
    "Jana",
    "Jonas",
    "Kira",
    "Liam",
    "Lena",
    "Marco",
    "Maya",
    "Nils",
    "Olga",
    "Omar",
    "Paula",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Sofia",
    "Tariq",
    "Uma",
    "Vera",
    "Wen",
    "Xavier",
    "Yara",
    "Zoe",
]
LAST = [
    "Adams",
    "Berger",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Hansen",
    "Ito",
    "Jensen",
    "Kowalski",
    "Larsen",
    "Moreau",
    "Novak",
    "Okafor",
    "Petrov",
    "Quist",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Ueda",
    "Varga",
    "Weber",
    "Yilmaz",
    "Zhang",
]
STREETS = [
    "Oak",
    "Elm",
    "Mill",
    "Harbour",
    "Station",
    "Church",
    "Market",
    "King",
    "Queen",
    "Park",
    "Bridge",
    "Garden",
]
CITIES = (
    ("Springfield", "49501"),
    ("Riverton", "82501"),
    ("Lakeside", "92040"),
    ("Fairview", "97024"),
    ("Georgetown", "78626"),
    ("Salem", "97301"),
    ("Franklin", "37064"),
    ("Clinton", "20735"),
)
PRODUCT_WORDS = {
    "HW": ("Hammer", "Drill", "Wrench", "Saw", "Level", "Screwdriver"),
    "GD": ("Rake", "Hose", "Planter", "Shears", "Seeds", "Trowel"),
    "KT": ("Kettle", "Pan", "Knife", "Whisk", "Grater", "Teapot"),
    "TY": ("Kite", "Puzzle", "Robot", "Blocks", "Yo-yo", "Train"),
}
ADJECTIVES = ("Classic", "Pro", "Compact", "Deluxe", "Eco", "Mini", "Heavy-duty", "Travel")
EPOCH = dt.date(2005, 1, 1)
DAYS = (dt.date(2024, 12, 31) - EPOCH).days
ORDERS_END = dt.date(2025, 6, 30)


@dataclass(frozen=True)
class Seeded:
    customers: int
    products: int
    orders: int
    order_lines: int


def _ymd(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


def _customer(rng: random.Random, cust_id: int) -> dict[str, Any]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    city, zip_code = rng.choice(CITIES)
    has_address = rng.random() < 0.9
    whole = rng.randrange(5, 200) * 100_00  # 500.00 .. 19,900.00
    cents = whole + rng.randrange(1, 100) if rng.random() < 0.35 else whole
    return {
        "cust_id": cust_id,
        "cust_nm": f"{first} {last}",
        "email_addr": f"{first.lower()}.{last.lower()}{cust_id}@example.com",
        "status_cd": "A" if rng.random() < 0.85 else "I",
        "created_yyyymmdd": _ymd(EPOCH + dt.timedelta(days=rng.randrange(DAYS))),
        "phone_no": f"+1-555-{rng.randrange(10**7):07d}" if rng.random() < 0.8 else "",
        "addr_line1": f"{rng.randrange(1, 400)} {rng.choice(STREETS)} St" if has_address else "",
        "addr_city": city if has_address else "",
        "addr_zip": zip_code if has_address else "",
        "credit_limit_cents": str(cents),
    }


def _product(rng: random.Random, prod_id: int) -> dict[str, Any]:
    category = rng.choice(sorted(PRODUCT_WORDS))
    return {
        "prod_id": prod_id,
        "prod_sku": f"{category}-{prod_id:05d}",
        "prod_nm": f"{rng.choice(ADJECTIVES)} {rng.choice(PRODUCT_WORDS[category])}",
        "price_cents": str(rng.randrange(199, 25_000)),
        "active_flg": "Y" if rng.random() < 0.9 else "N",
        "category_cd": category,
    }


def seed(
    db_url: str,
    *,
    customers: int = 2000,
    orders: int = 5000,
    products: int = 200,
    seed: int = 42,
) -> Seeded:
    """Fill an empty monolith database deterministically; returns the row counts."""
    rng = random.Random(seed)
    engine = db.make_engine(db_url)
    try:
        db.create_schema(engine)
        with engine.begin() as conn:
            if conn.execute(select(func.count()).select_from(db.customer)).scalar_one():
                raise ValueError(f"{db_url} already has customers; seed only an empty database")
            cust_rows = [_customer(rng, i) for i in range(1, customers + 1)]
            prod_rows = [_product(rng, i) for i in range(1, products + 1)]
            order_rows: list[dict[str, Any]] = []
            line_rows: list[dict[str, Any]] = []
            for ord_id in range(1, orders + 1 if customers and products else 1):
                cust = rng.choice(cust_rows)
                start = dt.datetime.strptime(cust["created_yyyymmdd"], "%Y%m%d").date()
                day = start + dt.timedelta(days=rng.randrange(max(1, (ORDERS_END - start).days)))
                total = 0
                for line_no in range(1, rng.randrange(1, 5) + 1):
                    prod = rng.choice(prod_rows)
                    qty = rng.randrange(1, 4)
                    total += int(prod["price_cents"]) * qty
                    line_rows.append(
                        {
                            "ord_id": ord_id,
                            "line_no": line_no,
                            "prod_id": prod["prod_id"],
                            "qty": qty,
                            "unit_price_cents": prod["price_cents"],
                        }
                    )
                order_rows.append(
                    {
                        "ord_id": ord_id,
                        "cust_id": cust["cust_id"],
                        "ord_total_cents": str(total),
                        "ord_status_cd": rng.choice("NPPSSSC"),
                        "ord_dt": _ymd(day),
                    }
                )
            for table, rows in (
                (db.customer, cust_rows),
                (db.product, prod_rows),
                (db.orders, order_rows),
                (db.order_lines, line_rows),
            ):
                if rows:
                    conn.execute(insert(table), rows)
        _advance_sequences(engine)
    finally:
        engine.dispose()
    return Seeded(len(cust_rows), len(prod_rows), len(order_rows), len(line_rows))


def _advance_sequences(engine: Engine) -> None:
    """PostgreSQL serials do not move on explicit ids; set them past the seeded rows."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        for table, column in (
            ("customer", "cust_id"),
            ("product", "prod_id"),
            ("orders", "ord_id"),
        ):
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                f"COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
            )
