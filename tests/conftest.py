"""Root test configuration. Area fixtures live in tests/<area>/conftest.py."""
