"""``strangler demo``: the sample migration, run end to end in one process.

``stack`` starts the pieces, ``traffic`` drives clients through the proxy,
``admin`` reads and moves routes through the admin API, ``migration`` holds the
steps and their checks, ``steps`` runs them, ``report`` prints them.
"""
