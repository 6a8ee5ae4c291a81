import pytest

from strangler.routing.paths import BadPath, normalize


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("/", "/"),
        ("/api/customers/7", "/api/customers/7"),
        ("/api//customers///7", "/api/customers/7"),
        ("//", "/"),
        ("/api/./customers", "/api/customers"),
        ("/api/orders/../customers/7", "/api/customers/7"),
        ("/api/customers/7/..", "/api/customers/"),
        ("/api/customers/", "/api/customers/"),
        ("/a/b/..", "/a/"),
        ("/a/..", "/"),
        ("/.", "/"),
        # unreserved characters are decoded ...
        ("/%61pi/%7Euser/%2D%2e%5F", "/api/~user/-._"),
        # ... and decoded dots are resolved like literal ones, so they cannot dodge a route
        ("/api/orders/%2e%2e/customers", "/api/customers"),
        ("/api/%2E/customers", "/api/customers"),
        # reserved and other escapes stay encoded (upper-cased): %2F never splits a segment
        ("/files/a%2fb", "/files/a%2Fb"),
        ("/q/%20x%3f", "/q/%20x%3F"),
    ],
)
def test_normalize(raw: str, canonical: str) -> None:
    assert normalize(raw) == canonical


@pytest.mark.parametrize(
    "raw",
    [
        "/..",
        "/../etc/passwd",
        "/a/../..",
        "/%2e%2e/secret",
        "/a/%2E%2E/%2e%2E/x",
        "/bad%zz",
        "/x%4",
        "*",
        "http://x/",
    ],
)
def test_paths_escaping_root_or_malformed_are_rejected_as_400(raw: str) -> None:
    with pytest.raises(BadPath) as info:
        normalize(raw)
    assert info.value.status == 400
