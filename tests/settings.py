"""Test settings: the real settings module, read with a test-friendly environment."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-with-enough-entropy-0123456789abcdefghijklmnop")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("LOG_FORMAT", "text")

from signalserver.settings import *  # noqa: F403
from signalserver.settings import BASE_DIR, DATABASES, STORAGES

TESTING = True
DASHBOARD_CHARTS_CACHE_SECONDS = 0  # each view computes its charts (tests/signalserver/test_charts.py covers the cache)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
# A file, not memory, so processes started by a test see the same test database.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / "test.sqlite3")}
