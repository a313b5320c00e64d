"""The Kafka clients' own messages, through Python logging.

librdkafka prints its messages raw to stderr unless a client is given a logger; through
logging they take the process's format (one JSON object per line when AVAIL_LOG_FORMAT
is json). Pass ``LIBRDKAFKA_LOGGER`` as the ``logger`` setting of every client.
"""

from __future__ import annotations

import logging

LIBRDKAFKA_LOGGER = logging.getLogger("librdkafka")
