"""A real local Apache Kafka broker (single node, KRaft combined mode) assembled from Maven jars.

Nothing runs at import time; see :func:`ensure_broker` and :func:`stop_broker`.
"""

from streams.broker.api import (
    BrokerHandle,
    BrokerStatus,
    broker_log_tail,
    broker_status,
    ensure_broker,
    stop_broker,
)

__all__ = ["BrokerHandle", "BrokerStatus", "broker_log_tail", "broker_status", "ensure_broker", "stop_broker"]
