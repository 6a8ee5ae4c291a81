"""strangler: a strangler-fig migration proxy.

Routes each path to the legacy monolith or to a new service by ``routes.yaml``,
mirrors and compares responses, rolls traffic out by percent and back in an
instant, and keeps the new services' data aligned by change data capture.
"""

__version__ = "0.1.0"

from strangler import build

# Compiled or pure: decided before any data-plane module loads (see strangler/build.py).
build.choose()
