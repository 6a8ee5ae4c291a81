"""``python -m sample_services.catalog --port 9102 --db sqlite:///catalog.db``."""

from sample_services.catalog.app import create_app
from sample_services.common import serve_main

if __name__ == "__main__":
    raise SystemExit(serve_main("python -m sample_services.catalog", 9102, create_app))
