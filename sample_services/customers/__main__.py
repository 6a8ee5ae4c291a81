"""``python -m sample_services.customers --port 9101 --db sqlite:///customers.db``."""

from sample_services.common import serve_main
from sample_services.customers.app import create_app

if __name__ == "__main__":
    raise SystemExit(serve_main("python -m sample_services.customers", 9101, create_app))
