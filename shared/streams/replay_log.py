"""Appending to a query job's event log atomically, from a worker or from the API's watchdog.

One Lua script assigns the next sequence number, appends the event to the replay buffer (entry id
`0-{seq}`), refreshes the buffer's TTL and publishes it, all inside Redis. Because the script refuses to
append after a terminal event, every stream ends with exactly one `done` or `error`, even when a worker,
a redelivered task and the watchdog race to end it (docs/architecture.md). With `honour_cancel`, it
also refuses while the job's cancel flag is set, so a worker learns of a cancel from the publish it was
doing anyway, at most one chunk late. A terminal event may carry the job's final record: the script then
writes it too (and frees the job's admission slot and its key's stream slot), so the stream and the record end
together or not at all (shared/streams/endings.py). An append sent again after a lost reply (APPEND_ID_FIELD)
is not stored twice.
"""

from __future__ import annotations

import json
import secrets

from shared import keys
from shared.jobs.records import JobField
from shared.streams.events import REPLAY_FIELD, TERMINAL_EVENTS, EventName, EventPayload, payload_json

# Return values of the script besides a positive seq.
STREAM_ENDED = 0
CANCELLED = -1
TERMINAL_FIELD = "t"
# Each append carries an id of its own, stored with its entry: a client that sends the same append again (redis-py
# retries a command whose connection failed, and Redis may have run it before the failure) gets the seq it was
# given instead of a second copy of the event. One append per job is in flight at a time (its publisher awaits each
# before the next), so the last entry is the only one a retry can repeat.
APPEND_ID_FIELD = "a"

APPEND_SCRIPT = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local seq = 1
if #last > 0 then
  local fields = last[1][2]
  local last_seq = tonumber(string.match(last[1][1], '%-(%d+)$'))
  for i = 1, #fields, 2 do
    if fields[i] == ARGV[9] and fields[i + 1] == ARGV[8] then return last_seq end
  end
  for i = 1, #fields, 2 do
    if fields[i] == ARGV[7] then return 0 end
  end
  seq = last_seq + 1
end
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
local wire = '{"seq":' .. seq .. ',"event":"' .. ARGV[1] .. '","data":' .. ARGV[2] .. '}'
if ARGV[4] == '1' then
  redis.call('XADD', KEYS[1], '0-' .. seq, ARGV[6], wire, ARGV[7], '1', ARGV[9], ARGV[8])
else
  redis.call('XADD', KEYS[1], '0-' .. seq, ARGV[6], wire, ARGV[9], ARGV[8])
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
if #KEYS > 3 then
  redis.call('HSET', KEYS[4], unpack(ARGV, 15))
  if tonumber(ARGV[10]) > 0 then redis.call('EXPIRE', KEYS[4], tonumber(ARGV[10])) end
  redis.call('PUBLISH', KEYS[5], ARGV[11])
  redis.call('ZREM', KEYS[6], ARGV[12])
  local owner = redis.call('HGET', KEYS[4], ARGV[13])
  if owner and owner ~= '' then redis.call('ZREM', ARGV[14] .. owner, ARGV[12]) end
end
redis.call('PUBLISH', KEYS[2], wire)
return seq
"""


def append_call(
    job_id: str,
    event: EventName,
    data: EventPayload,
    ttl_s: int,
    honour_cancel: bool,
    final_record: dict[str, str] | None = None,
    job_ttl_s: int = 0,
) -> tuple[list[str], list[str]]:
    """(keys, args) for an EVAL of APPEND_SCRIPT.

    `final_record` (terminal events only) is the job hash's final fields, written with the event; with
    `job_ttl_s` > 0 the record's expiry is renewed too.
    """
    script_keys = [keys.replay_key(job_id), keys.stream_channel(job_id), keys.cancel_key(job_id)]
    args = [
        event.value,
        payload_json(data),
        str(ttl_s),
        "1" if event in TERMINAL_EVENTS else "0",
        "1" if honour_cancel else "0",
        REPLAY_FIELD,
        TERMINAL_FIELD,
        secrets.token_hex(8),
        APPEND_ID_FIELD,
    ]
    if final_record is not None:
        if event not in TERMINAL_EVENTS:
            raise ValueError("only a terminal event carries the job's final record")
        script_keys += [keys.job_key(job_id), keys.progress_channel(job_id), keys.open_queries_key()]
        # The owner's `max_streams` slot (api/key_limits.py) is freed here too; its key is named from the
        # job's owner inside the script, which a single Redis allows (a cluster would need it in KEYS).
        args += [str(job_ttl_s), json.dumps(final_record), job_id, JobField.OWNER, keys.key_streams_key("")]
        args += [item for pair in final_record.items() for item in pair]
    return script_keys, args
