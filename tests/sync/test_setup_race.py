"""Workers started at the same moment (scale-out with the kafka source) each set up the
bookkeeping tables in the same target. Found from outside: a second worker died at
start with ``duplicate key value violates unique constraint "pg_type_typname_nsp_index"``
(both created the same table at once). Setting up must be safe to run concurrently."""

from __future__ import annotations

import threading

import psycopg

from strangler.sync.adapters import AdapterSet
from strangler.sync.sink import Sink
from tests.sync.conftest import sync_config


def set_up_at_once(sinks: list[Sink]) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(len(sinks))

    def set_up(sink: Sink) -> None:
        start.wait()
        try:
            sink.setup()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=set_up, args=(s,)) for s in sinks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_sinks_set_up_the_same_fresh_target_at_once(pg_url: str) -> None:
    adapters = AdapterSet(sync_config(pg_url, {"table": "people", "key": ["id"]}))
    for _round in range(3):
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
        sinks = [Sink("svc", pg_url, adapters) for _ in range(4)]
        errors = set_up_at_once(sinks)
        for sink in sinks:
            sink.close()
        assert not errors, errors
