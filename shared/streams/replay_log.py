"""Appending to a query job's event log atomically, from a worker or from the API's watchdog.

One Lua script assigns the next sequence number, appends the event to the replay buffer (entry id
`0-{seq}`), refreshes the buffer's TTL and publishes it, all inside Redis. Because the script refuses to
append after a terminal event, every stream ends with exactly one `done` or `error`, even when a worker,
a redelivered task and the watchdog race to end it (docs/architecture.md). With `honour_cancel`, it
also refuses while the job's cancel flag is set, so a worker learns of a cancel from the publish it was
doing anyway, at most one chunk late.
"""

from __future__ import annotations

import json
from typing import Any

from shared import keys
from shared.streams.events import REPLAY_FIELD, TERMINAL_EVENTS, EventName

# Return values of the script besides a positive seq.
STREAM_ENDED = 0
CANCELLED = -1
TERMINAL_FIELD = "t"

APPEND_SCRIPT = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local seq = 1
if #last > 0 then
  local fields = last[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == ARGV[7] then return 0 end
  end
  seq = tonumber(string.match(last[1][1], '%-(%d+)$')) + 1
end
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
local wire = '{"seq":' .. seq .. ',"event":"' .. ARGV[1] .. '","data":' .. ARGV[2] .. '}'
if ARGV[4] == '1' then
  redis.call('XADD', KEYS[1], '0-' .. seq, ARGV[6], wire, ARGV[7], '1')
else
  redis.call('XADD', KEYS[1], '0-' .. seq, ARGV[6], wire)
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
redis.call('PUBLISH', KEYS[2], wire)
return seq
"""


def append_call(
    job_id: str, event: EventName, data: Any, ttl_s: int, honour_cancel: bool
) -> tuple[list[str], list[str]]:
    """(keys, args) for an EVAL of APPEND_SCRIPT."""
    script_keys = [keys.replay_key(job_id), keys.stream_channel(job_id), keys.cancel_key(job_id)]
    args = [
        event.value,
        json.dumps(data, ensure_ascii=False),
        str(ttl_s),
        "1" if event in TERMINAL_EVENTS else "0",
        "1" if honour_cancel else "0",
        REPLAY_FIELD,
        TERMINAL_FIELD,
    ]
    return script_keys, args
