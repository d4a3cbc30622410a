from tests.delivery.conftest import box, endpoint, schedule  # noqa: F401  (shared)
from tests.mail.conftest import imap, imap_server, mailbox, webhook_receiver  # noqa: F401  (shared)
