"""The customers service: customers and their addresses in a clean model, ``/v2/customers``.

``create_app(db_url)`` in ``app.py``; the tables in ``db.py`` (``metadata``), which
the CDC sync fills from the monolith's ``CUSTOMER`` table through
``adapters.customers:CustomerRows``.
"""
