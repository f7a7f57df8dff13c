"""Appends from many answers on one event loop, sent to Redis together: one pipeline per turn of the loop.

A worker's event loop holds many answers at once (`zhipu`, `openai_compatible`), and each `token` event is
one call of the append script (shared/streams/replay_log.py). One call each cost a connection checkout, a
round trip and a timeout per event: the largest part of the worker's CPU per answer (docs/benchmarks.md).
Here every append asked for during one turn of the loop goes out in one pipeline, and each caller gets its
own result (or its own error) back. Each answer still awaits its append before the next, so its events stay
in order; Redis runs each script atomically, so answers interleaving in one pipeline cannot mix their seqs.
The pipeline calls the script by its SHA: a redis-py pipeline given a `Script` first asks Redis whether the
script exists, one more round trip per batch. When Redis has lost it (a restart, SCRIPT FLUSH), the calls it
refused with NOSCRIPT (which therefore did not run) are sent again once it is loaded.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from shared.streams.replay_log import APPEND_SCRIPT

Call = tuple[list[str], list[str], "asyncio.Future[int]"]


class AppendBatcher:
    """Batches APPEND_SCRIPT calls made on one event loop (create it, and call it, on that loop only)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.script = client.register_script(APPEND_SCRIPT)
        self._pending: list[Call] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def append(self, script_keys: list[str], args: list[str]) -> int:
        """The script's result for these keys and arguments, sent with whatever else this loop turn appends."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._pending.append((script_keys, args, future))
        if len(self._pending) == 1:  # the first of this turn: send the batch once the turn's callers are in
            loop.call_soon(self._start_flush)
        return await future

    def _start_flush(self) -> None:
        batch, self._pending = self._pending, []
        flush = asyncio.get_running_loop().create_task(self._flush(batch))
        self._flushes.add(flush)  # held until done, so the loop does not drop it
        flush.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[Call]) -> None:
        try:
            results = await self._send(batch)
            refused = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
            if refused:
                await self.client.script_load(APPEND_SCRIPT)
                for i, result in zip(refused, await self._send([batch[i] for i in refused]), strict=True):
                    results[i] = result
        except BaseException as exc:  # the connection failed: every caller of the batch gets the error
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else ConnectionError(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        for (*_, future), result in zip(batch, results, strict=True):
            if future.done():  # its caller was cancelled meanwhile
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(int(result))

    async def _send(self, calls: list[Call]) -> list[Any]:
        async with self.client.pipeline(transaction=False) as pipe:
            for script_keys, args, _ in calls:
                pipe.evalsha(self.script.sha, len(script_keys), *script_keys, *args)
            return list(await pipe.execute(raise_on_error=False))
