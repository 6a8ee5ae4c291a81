"""An ``IdMap`` hook for the identity tests: legacy order numbers -> the new side's ids."""

from __future__ import annotations

from strangler.shadow.identity import IdMap

LOOKUPS: list[str] = []


async def lookup(legacy: str) -> str | None:
    LOOKUPS.append(legacy)
    return {"1042": "ord-7f3a"}.get(legacy)


hook = IdMap(lookup)
