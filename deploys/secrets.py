"""Deploy secrets never reach a log line, a Deployment row or a page: everything shown goes through `mask`."""

from __future__ import annotations

import logging
import re
import urllib.parse

from django.conf import settings

from signalserver.logs import rewrite_message

# The Render deploy hook carries its credential in the query string: ...?key=<secret>.
_KEY_PARAM = re.compile(r"([?&]key=)[^&\s'\"<>]+")


def secret_values() -> list[str]:
    hook_keys = urllib.parse.parse_qs(urllib.parse.urlsplit(settings.RENDER_DEPLOY_HOOK_URL).query).get("key", [])
    values = [settings.RENDER_API_KEY, settings.GITHUB_WEBHOOK_SECRET, *hook_keys]
    values += [urllib.parse.quote(v, safe="") for v in values]
    # Longest first, so a secret containing another is masked whole.
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def mask(text: str) -> str:
    """`text` with every deploy secret, and any `key=` of a URL, replaced by ***."""
    for value in secret_values():
        text = text.replace(value, "***")
    return _KEY_PARAM.sub(r"\1***", text)


class MaskSecrets(logging.Filter):
    """Installed on the loggers that may see a deploy URL (ours, urllib3's request lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        rewrite_message(record, mask)
        return True


MASKED_LOGGERS = ("deploys", "urllib3.connectionpool", "django.request")


def install_log_filter() -> None:
    for name in MASKED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, MaskSecrets) for f in logger.filters):
            logger.addFilter(MaskSecrets())
