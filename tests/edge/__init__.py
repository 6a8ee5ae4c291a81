"""Issue 14's defects, probed from outside against a real `strangler serve` process
with raw sockets (``support.serve``, ``support.wire_upstream``, ``support.connect``).

Each test was written to fail on the code before its fix, ``xfail(strict=True)``; the
markers went as the fixes landed (only the admin Host check is still marked here).

1 stalled clients open a circuit / roll back  test_backpressure.py
2 trailers used for routing and pinning       test_trailers.py
3 any Upgrade (h2c) tunnelled                 test_upgrade.py::test_h2c_...
4 adapter output unchecked (CR/LF)            test_adapter_output.py
5 bad Host accepted                           test_host.py
6 pipelined mirror gets the raw target        test_shadow_edge.py::test_the_mirror_...
7 client X-Strangler-* forwarded / obeyed     test_shadow_edge.py (two tests)
8 unsolicited 101 relayed, pool left broken   test_upgrade.py::test_an_unsolicited_101_...
Also: framing (HTTP/1.0+chunked, 0.9, chunk size) test_framing.py; shutdown grace
test_shutdown.py; Location rewrite and reason phrase test_responses.py; X-Request-Id
and trace context test_trace.py; admin Host check test_admin_host.py; the access
log test_access_log.py; a route's ``upgrade:`` list and a stripped upgrade's body
test_upgrade.py; the pin header dropped test_shadow_edge.py; a stalled client cut
and counted 499 test_backpressure.py.
"""
