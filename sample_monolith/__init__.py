"""A legacy shop: the monolith the sample migration strangles.

One database in a 1990s model (``CUSTOMER``, ``ORDERS``, ``ORDER_LINES``,
``PRODUCT``; codes, cents as strings, ``YYYYMMDD`` dates), a JSON API that
exposes it with the same legacy names, and a couple of HTML screens. It knows
nothing about strangler: it is the thing being migrated.

Start it in-process with ``create_app(db_url)`` (``sample_monolith.app``) and
fill it with ``seed(db_url, ...)`` (``sample_monolith.seed``), or from a shell
with ``python -m sample_monolith --port 9000 --db sqlite:///shop.db --seed``.
"""
