"""The catalog service: products in a clean model, ``/v2/products``, read-only.

``create_app(db_url)`` in ``app.py``; the table in ``db.py`` (``metadata``), which
the CDC sync fills from the monolith's ``PRODUCT`` table through
``adapters.catalog:ProductRows``. Product maintenance stays in the monolith's
back office for now, so the service only reads.
"""
