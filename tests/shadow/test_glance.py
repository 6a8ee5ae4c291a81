"""``Comparator.glance`` (the pipelined lane's shortcut) against ``Comparator.compare``.

The lane asks ``glance`` with the raw answers, and only when it has no outcome
are they compared in full; so the lane's outcome is the comparator's only if a
glance never says what ``compare`` would not. Here both are fed the same pairs:
the client's answer as a real shadow copy holds it (teed by the data plane, or
an adapter's value), the mirror's as the channel's parser hands it over, turned
into observations exactly as the judge turns them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from strangler.config import CompareConfig
from strangler.message import HttpResponse, make_headers
from strangler.proxy.request import ProxyRequest, RequestBody
from strangler.routing.decision import Decision
from strangler.shadow.compare import Comparator
from strangler.shadow.copy import ShadowCopy
from strangler.shadow.observation import Observation
from strangler.shadow.outcome import ShadowOutcome

Raw = list[tuple[bytes, bytes]]

NAMES = [b"Content-Type", b"content-type", b"X-A", b"x-a", b"Connection", b"Server"]
VALUES = [b"application/json", b"text/plain", b"a", b"b"]
BODIES = [b'{"t": 1, "n": "x"}', b'{"t": 2, "n": "x"}', b'{"n":"x","t":1}', b"", b"plain"]
STATUSES = [200, 404, None]

HEADERS = ["content-type", "x-a", "connection", "server"]
IGNORE = ["header.x-a", "header.*", "body.t", "status"]

Answer = tuple[int | None, Raw, bytes]


def answer(rng: random.Random) -> Answer:
    headers = [(rng.choice(NAMES), rng.choice(VALUES)) for _ in range(rng.randint(0, 5))]
    return rng.choice(STATUSES), headers, rng.choice(BODIES)


def config(rng: random.Random) -> CompareConfig:
    return CompareConfig(
        headers=tuple(rng.sample(HEADERS, rng.randint(0, 3))),
        ignore=tuple(rng.sample(IGNORE, rng.randint(0, 2))),
        tolerance=rng.choice([0.0, 1.0]),
    )


def cases(count: int, seed: int) -> Iterator[tuple[CompareConfig, Answer, Answer, bool, bool]]:
    """Seeded random cases (the same every run): configs, two answers, two flags."""
    rng = random.Random(seed)
    for _ in range(count):
        first = answer(rng)
        # Half the pairs identical or near it: those are what the glance answers.
        second = first if rng.random() < 0.5 else answer(rng)
        yield config(rng), first, second, rng.random() < 0.5, rng.random() < 0.5


EXAMPLES = [
    # A target that sends one header in two spellings: the comparison reads the first.
    # (The lane used to look the client's spelling up first and call this a match.)
    (
        CompareConfig(),
        (200, [(b"content-type", b"b")], b"x"),
        (200, [(b"Content-Type", b"a"), (b"content-type", b"b")], b"x"),
        False,
        True,
    ),
    # A compared hop-by-hop header: an adapter's answer keeps it, an observation drops it.
    (
        CompareConfig(headers=("connection",)),
        (200, [(b"Connection", b"a")], b"x"),
        (200, [(b"Connection", b"a")], b"x"),
        True,
        True,
    ),
]


def client_copy(answer: Answer, adapted: bool) -> ShadowCopy:
    """The client's answer in a shadow copy: teed raw by the data plane, or (``adapted``)
    the value an adapter made, as ``strangler.proxy.shadowing`` completes copies."""
    status, headers, body = answer
    request = ProxyRequest("GET", b"/x", [], True, RequestBody(None, True))
    decision = Decision(None, {}, "/x", "legacy", "legacy", False, None, False, 0)
    copy = ShadowCopy(request, decision, 1 << 20)
    if status is None:
        copy.error = "connect: refused"
    elif adapted:
        decoded = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers]
        copy.answered_with(HttpResponse(headers=make_headers(decoded), body=body, status=status))
    else:
        copy.status, copy.response_headers, copy.response_body = status, headers, body
    return copy


def parsed(headers: Raw) -> dict[bytes, bytes]:
    """The headers as the channel's parser hands them over (first value per spelling)."""
    fields: dict[bytes, bytes] = {}
    for name, value in headers:
        fields.setdefault(name, value)
    return fields


def compared(
    comparator: Comparator, copy: ShadowCopy, mirror: Answer, client_is_legacy: bool
) -> ShadowOutcome:
    """``compare``'s outcome, with the observations built as the judge builds them."""
    client_side, mirror_side = ("legacy", "new") if client_is_legacy else ("new", "legacy")
    primary = copy.primary()
    first = (
        Observation.of(client_side, "a", primary, 0.0)
        if primary is not None
        else Observation.failure(client_side, "a", copy.error or "failed", 0.0)
    )
    status, headers, body = mirror
    second = (
        Observation.raw(mirror_side, "b", status, parsed(headers).items(), body, 0.0)
        if status is not None
        else Observation.failure(mirror_side, "b", "timeout", 0.0)
    )
    legacy, new = (first, second) if client_is_legacy else (second, first)
    return comparator.compare(legacy, new).outcome


def glanced(comparator: Comparator, copy: ShadowCopy, mirror: Answer) -> Any:
    status, headers, body = mirror
    return comparator.glance(copy, status, parsed(headers).items(), body)


@pytest.mark.parametrize("seed", range(3))
def test_a_glance_never_says_what_the_comparison_would_not(seed: int) -> None:
    for rules, client, mirror, adapted, client_is_legacy in [*EXAMPLES, *cases(500, seed)]:
        comparator = Comparator(rules)
        copy = client_copy(client, adapted)
        glance = glanced(comparator, copy, mirror)
        assert glance is None or glance == compared(comparator, copy, mirror, client_is_legacy), (
            rules,
            client,
            mirror,
            adapted,
        )


@pytest.mark.parametrize("seed", range(300))
def test_identical_answers_and_failed_sides_are_known_at_a_glance(seed: int) -> None:
    """The shortcut does its job: what it is there for never goes the long way."""
    rules, answer, _, _, client_is_legacy = next(cases(1, 1000 + seed))
    config = rules
    comparator = Comparator(config)
    copy = client_copy(answer, adapted=False)
    glance = glanced(comparator, copy, answer)
    if answer[0] is None:
        assert glance == ShadowOutcome.ERROR
    elif "connection" not in config.headers or "header.*" in config.ignore:
        assert glance == ShadowOutcome.MATCH
    assert compared(comparator, copy, answer, client_is_legacy) == (
        ShadowOutcome.ERROR if answer[0] is None else ShadowOutcome.MATCH
    )
    failed_mirror = glanced(comparator, copy, (None, [], b""))
    assert failed_mirror == ShadowOutcome.ERROR


def test_a_header_sent_in_two_spellings_is_left_to_the_comparison() -> None:
    """The comparison reads a header's first value; the pipelined lane used to look the
    client's spelling up first, and counted this mismatch as a match."""
    comparator = Comparator(CompareConfig())
    copy = client_copy((200, [(b"content-type", b"b")], b"x"), adapted=False)
    mirror: Answer = (200, [(b"Content-Type", b"a"), (b"content-type", b"b")], b"x")
    assert compared(comparator, copy, mirror, client_is_legacy=True) == ShadowOutcome.MISMATCH
    assert glanced(comparator, copy, mirror) is None
