"""The services extracted from the monolith, each with its own database and clean model.

``sample_services.customers`` (``/v2/customers``) and ``sample_services.catalog``
(``/v2/products``). Each is a small aiohttp app built by ``create_app(db_url)``;
each creates its own schema from its SQLAlchemy ``metadata`` (``db.py``), which
is also what the CDC sync writes into.
"""
