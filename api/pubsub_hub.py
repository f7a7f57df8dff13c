"""One Redis pub/sub connection per API process, fanned out to every open stream.

A connection per SSE client would cost Redis a client per stream (hundreds under load) and the API a
subscribe round trip per stream; here a stream's subscription is a queue registered under its channel.
A reader task routes each message to the queues of its channel. If the connection drops, redis-py reconnects
and re-subscribes on the next read, and messages published meanwhile are deliberately left lost, because the
relay re-reads the replay buffer whenever its stream is quiet, which is what makes that safe.
An unsubscribe while Redis is away (a restart) is not lost: redis-py would subscribe that channel
again on reconnecting, so after a reconnect the hub drops every channel no stream holds any more (a channel
left subscribed would also look like a listener to api/cancellation.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from shared import keys

log = logging.getLogger(__name__)


class Subscription:
    """Messages of one channel for one consumer; `close()` (or the context manager) unsubscribes."""

    def __init__(self, hub: PubSubHub, channel: str) -> None:
        self.hub = hub
        self.channel = channel
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    async def get(self, timeout: float) -> str | None:
        """The next message, or None if none came within `timeout` seconds."""
        if not self.queue.empty():  # already here: no timer
            return self.queue.get_nowait()
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for runs the wait in a task of its own, per message.
            # A cancelled `get` leaves its message in the queue.
            async with asyncio.timeout(timeout):
                return await self.queue.get()
        except TimeoutError:
            return None

    def ready(self) -> list[str]:
        """The messages already here, without waiting."""
        queue = self.queue
        return [queue.get_nowait() for _ in range(queue.qsize())]

    def drain(self) -> None:
        """Discard the messages already here."""
        self.ready()

    async def close(self) -> None:
        await self.hub.unsubscribe(self)


class PubSubHub:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._pubsub: PubSub | None = None
        self._subscribers: dict[str, set[Subscription]] = {}
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(keys.hub_channel())
        self._reader = asyncio.create_task(self._read(), name="pubsub-hub")

    async def stop(self) -> None:
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub:
            await self._pubsub.aclose()

    async def subscribe(self, channel: str) -> Subscription:
        if self._pubsub is None:
            raise RuntimeError("the pub/sub hub was not started")
        subscription = Subscription(self, channel)
        async with self._lock:
            first = channel not in self._subscribers
            self._subscribers.setdefault(channel, set()).add(subscription)
            if first:
                await self._pubsub.subscribe(channel)
        return subscription

    async def unsubscribe(self, subscription: Subscription) -> None:
        async with self._lock:
            subscribers = self._subscribers.get(subscription.channel)
            if subscribers is None or subscription not in subscribers:
                return
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.channel]
                if self._pubsub is not None:
                    try:
                        await self._pubsub.unsubscribe(subscription.channel)
                    except RedisError:  # Redis is away: dropped after the reconnect (`_forget_stale`)
                        log.warning("pub/sub hub could not unsubscribe %s", subscription.channel, exc_info=True)

    async def _forget_stale(self) -> None:
        """Unsubscribe the channels redis-py re-subscribed on reconnecting that no stream holds any more."""
        assert self._pubsub is not None
        async with self._lock:
            held = {*self._subscribers, keys.hub_channel()}
            stale = [c for c in map(_text, self._pubsub.channels) if c not in held]
            if stale:
                await self._pubsub.unsubscribe(*stale)

    async def _read(self) -> None:
        assert self._pubsub is not None
        reconnected = False
        while True:
            try:
                # No timeout: nothing needs the reader awake without a message, and a read with one arms an asyncio
                # timeout (and, on Python 3.11, a getpid() system call) per message.
                message = await self._pubsub.get_message(timeout=None)
                if reconnected:
                    await self._forget_stale()
                    reconnected = False
            except asyncio.CancelledError:
                raise
            except Exception:  # a dropped connection: redis-py reconnects on the next read
                log.warning("pub/sub hub read failed; reconnecting", exc_info=True)
                reconnected = True
                await asyncio.sleep(0.5)
                continue
            if message is None or message.get("type") != "message":
                continue
            for subscription in tuple(self._subscribers.get(message["channel"], ())):
                subscription.queue.put_nowait(message["data"])


def _text(channel: str | bytes) -> str:
    return channel.decode() if isinstance(channel, bytes) else channel
