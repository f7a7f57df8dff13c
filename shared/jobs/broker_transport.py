"""kombu's Redis transport, with one fix so a worker survives Redis restarting while it runs a task.

Do not remove without re-running tests/integration/test_faults.py: with kombu 5.7 and Celery 5.7, when the
broker connection drops while a late-acked task runs, the consumer first collects the connection (which
clears the transport's `client`, its connection info) and then closes it; closing the channel then tries to
put the unacked message back and asks the cleared `client` for the broker's host: an AttributeError that
Celery does not expect, so the worker stops for good ("Unrecoverable error") instead of reconnecting. The
channel keeps its own copy of the connection info and uses it then; the reconnect proceeds as designed.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._conninfo = self.connection.client

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:  # the transport was collected before this channel closed
            self.connection.client = self._conninfo
        return dict(super()._connparams(asynchronous))


class Transport(kombu_redis.Transport):
    Channel = Channel


# Celery's `broker_transport` setting: this class, for redis:// URLs (rediss:// keeps kombu's own).
TRANSPORT = f"{__name__}:Transport"
