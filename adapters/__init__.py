"""The anti-corruption layer of the sample migration.

``adapters.customers`` and ``adapters.catalog`` hold, per bounded context, an HTTP
adapter (``strangler.adapter.HttpAdapter``: legacy request -> service request,
service response -> legacy response) and a data adapter
(``strangler.sync.model.RowAdapter``: legacy row change -> service row writes).
The translation rules they share live in ``*_model.py`` as pure functions.
"""
