"""The suite's Kafka: which one it is, the group session it allows, and ixb subprocesses' env.

By default the session starts Apache Kafka (one KRaft node, secured, tests/conftest.py);
``IXB_KAFKA_BOOTSTRAP`` points the whole suite at a cluster started elsewhere
instead, whose group.min.session.timeout.ms is not ours to lower.
"""

from __future__ import annotations

import os

from broker.app.settings import Settings
from broker.kafka.embedded import group_session_timeout_ms

SUITE_SETTINGS = Settings()  # the IXB_ variables the suite was started with
EXTERNAL = SUITE_SETTINGS.kafka_bootstrap  # a cluster started elsewhere, or None
# The session timeout every consumer group of the suite uses (one rule: broker/kafka/embedded).
SESSION_TIMEOUT_MS = group_session_timeout_ms(embedded=EXTERNAL is None)
# The session's embedded Kafka runs with TLS, mTLS and ACLs unless this says off.
SECURED = os.environ.get("IXB_TEST_KAFKA_SECURITY", "on") != "off"


def subprocess_env(settings: Settings) -> dict[str, str]:
    """The environment an ``ixb`` subprocess needs to run with exactly ``settings``."""
    return settings.environment(os.environ)
