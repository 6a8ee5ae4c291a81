"""``strangler verify -c routes.yaml [--repair]``: report (and repair) drift between the
monolith and the services' databases (``--reverse``: the way back, service -> monolith).

Prints one line per drifting row (missing / extra / different, with the differing
columns) and a summary; exits 0 when there is no drift (or all of it was repaired),
1 otherwise. Reads the monolith; writes to targets only with ``--repair``.
"""

from __future__ import annotations

import argparse

from strangler.commands.sync import load_sync
from strangler.sync.verify import Verifier
from strangler.sync.verify_back import WayBackVerifier


def run(args: argparse.Namespace) -> int:
    sync, base_dir = load_sync(args.config)
    verifier = WayBackVerifier(sync, base_dir) if args.reverse else Verifier(sync, base_dir)
    report = verifier.run(repair=args.repair)
    for drift in report.drift:
        print(drift)
    for line in report.unmappable:
        print(f"unmappable {line}")
    for table, counts in sorted(report.rows.items()):
        print(f"  {table}: {counts.source_rows} source rows, {counts.target_rows} target rows")
    print(
        f"verify: {report.compared} rows compared; {report.count('missing')} missing, "
        f"{report.count('extra')} extra, {report.count('different')} different, "
        f"{report.count('duplicate')} duplicate"
        + (f"; repaired {report.repaired}" if args.repair else "")
    )
    if not report.drift:
        return 0
    fixable = len(report.drift) - report.count("duplicate")  # no write fixes a duplicate
    return 0 if args.repair and not report.count("duplicate") and report.repaired >= fixable else 1
