"""Lua scripts: every state change of a task is checked and made atomically in Redis.

Each script touches only one task's keys (one hash tag, one Cluster slot). Errors are
returned as ``<CODE> detail`` replies that :mod:`streams.tasks` turns into exceptions.
Numbers that may exceed 14 digits (microsecond timestamps) are passed through as strings,
never converted in Lua, whose number formatting would round them.
"""

from __future__ import annotations

__all__ = [
    "APPEND",
    "CLOSE_INBOX",
    "CREATE",
    "CREATE_GROUP",
    "DEAD_LETTER",
    "END_WAIT",
    "OPEN_ATTEMPT",
    "RECORD_INPUT",
    "REQUEST_CANCEL",
    "REQUEUE",
    "SET_WAITING",
]

# A Lua helper some scripts start with: append ``n`` encoded events whose fields start
# after ARGV[base] (groups of t, m, g, d, x) under ``attempt``; returns the last seq and id.
_ADD_EVENTS = """
local function add_events(stream, maxlen, attempt, seq, base, n)
  local id
  for i = 1, n do
    local b = base + (i - 1) * 5
    seq = seq + 1
    local f = {'t', ARGV[b + 1], 's', seq, 'a', attempt, 'm', ARGV[b + 2], 'g', ARGV[b + 3], 'd', ARGV[b + 4]}
    if ARGV[b + 5] ~= '' then f[13] = 'x'; f[14] = ARGV[b + 5] end
    id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(f))
  end
  return seq, id
end
"""

# KEYS: events, meta
# ARGV: owner, created_at, request, maxlen, ttl_s, t, m, g, d, x, agent
# -> {1, id} when created; {0, owner, status} when the task already existed
CREATE = """
if redis.call('EXISTS', KEYS[2]) == 1 then
  local m = redis.call('HMGET', KEYS[2], 'owner', 'status')
  return {0, m[1] or '', m[2] or ''}
end
local id
if ARGV[10] == '' then
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*',
    't', ARGV[6], 's', 1, 'a', 1, 'm', ARGV[7], 'g', ARGV[8], 'd', ARGV[9])
else
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*',
    't', ARGV[6], 's', 1, 'a', 1, 'm', ARGV[7], 'g', ARGV[8], 'd', ARGV[9], 'x', ARGV[10])
end
redis.call('HSET', KEYS[2], 'owner', ARGV[1], 'status', 'queued', 'attempt', 0, 'seq', 1,
  'done', 0, 'created_at', ARGV[2], 'request', ARGV[3], 'agent', ARGV[11])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return {1, id}
"""

# KEYS: events, meta
# ARGV: started_at, ttl_s
# -> {attempt, last_seq}; errors NOTASK, COMPLETED, WAITING (a stray job of a task that
#    waits for input: only the input requeues it)
# ``wseq`` is the seq after the attempt's own last append (see APPEND); a new attempt
# takes messages again (``finishing`` is the previous attempt's, see CLOSE_INBOX).
OPEN_ATTEMPT = """
local cur = redis.call('HMGET', KEYS[2], 'attempt', 'done', 'seq', 'status')
if not cur[1] then return redis.error_reply('NOTASK') end
if cur[2] == '1' then return redis.error_reply('COMPLETED') end
if cur[4] == 'waiting' then return redis.error_reply('WAITING') end
local attempt = redis.call('HINCRBY', KEYS[2], 'attempt', 1)
redis.call('HSET', KEYS[2], 'status', 'running', 'attempt_started_at', ARGV[1], 'wseq', cur[3])
redis.call('HDEL', KEYS[2], 'finishing')
redis.call('HSETNX', KEYS[2], 'started_at', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return {attempt, tonumber(cur[3])}
"""

# KEYS: events, meta, dead
# ARGV: attempt, expected_seq, maxlen, retention_s, final_status, ended_at, n,
#       then n groups of (t, m, g, d, x)
# -> {last_seq, id1, ..., idn}
# A batch whose reply was lost is detected by its seq and answered again, not re-applied:
# the writer may resend after a connection error without duplicating events.
# Others may append while the attempt runs (a message sent to the running task, see
# RECORD_INPUT): ``wseq``, the seq after this attempt's own last append, tells events
# appended by others since (go on after them) from a resend of a batch already applied.
# A wait event (``approval_required``, ``input_required``) enters the meta's
# ``pending_input`` in the same call, so an answer sent the moment a reader sees the event
# is taken even though the attempt has not parked the task yet (see SET_WAITING).
APPEND = """
local attempt = tonumber(ARGV[1])
local expected = tonumber(ARGV[2])
local n = tonumber(ARGV[7])
local cur = redis.call('HMGET', KEYS[2], 'attempt', 'seq', 'done', 'wseq')
if not cur[1] then return redis.error_reply('NOTASK') end
if tonumber(cur[1]) ~= attempt then return redis.error_reply('FENCED ' .. cur[1]) end
local seq = tonumber(cur[2])
if seq ~= expected then
  local wseq = tonumber(cur[4] or '-1')
  if wseq == expected + n or (wseq < 0 and seq == expected + n) then
    local recent = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', seq - expected)
    local out = {seq}
    for i = #recent, #recent - n + 1, -1 do out[#out + 1] = recent[i][1] end
    return out
  end
  if wseq ~= expected or seq < expected then
    return redis.error_reply('SEQMISMATCH expected ' .. expected .. ' found ' .. seq)
  end
end
if cur[3] == '1' then return redis.error_reply('COMPLETED') end
for i = 1, n - 1 do
  if ARGV[8 + (i - 1) * 5] == 'completed' then return redis.error_reply('AFTERCOMPLETED') end
end
local out = {0}
local done = false
local WAIT_KINDS = {approval_required = 'approval', input_required = 'question'}
local waits
for i = 1, n do
  local b = 7 + (i - 1) * 5
  seq = seq + 1
  local id
  if ARGV[b + 5] == '' then
    id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 't', ARGV[b + 1], 's', seq,
      'a', attempt, 'm', ARGV[b + 2], 'g', ARGV[b + 3], 'd', ARGV[b + 4])
  else
    id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 't', ARGV[b + 1], 's', seq,
      'a', attempt, 'm', ARGV[b + 2], 'g', ARGV[b + 3], 'd', ARGV[b + 4], 'x', ARGV[b + 5])
  end
  out[i + 1] = id
  local kind = WAIT_KINDS[ARGV[b + 1]]
  if kind then
    waits = waits or cjson.decode(redis.call('HGET', KEYS[2], 'pending_input') or '[]')
    waits[#waits + 1] = {tool_call_id = cjson.decode(ARGV[b + 4])['tool_call_id'], kind = kind}
  end
  if ARGV[b + 1] == 'completed' then done = true end
end
if waits then redis.call('HSET', KEYS[2], 'pending_input', cjson.encode(waits)) end
out[1] = seq
if done then
  redis.call('HSET', KEYS[2], 'seq', seq, 'wseq', seq, 'done', 1, 'status', ARGV[5], 'ended_at', ARGV[6],
    'last_id', out[n + 1])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('EXPIRE', KEYS[3], ARGV[4]) end
else
  redis.call('HSET', KEYS[2], 'seq', seq, 'wseq', seq, 'last_id', out[n + 1])
end
return out
"""

# KEYS: events, meta, dead
# ARGV: reason, requested_at, maxlen, retention_s, ended_at, expected attempt, n,
#       then n groups of (t, m, g, d, x)
# -> {0} already ended, {1} a worker holds the task (it ends the stream), {2, id} ended
#    here, {3} the attempt moved since the caller read it (read again and retry)
# Records the request; then, if no worker's lease (meta ``lease_until``, epoch ms on this
# Redis's clock, see worker/lease.py) is live, ends the stream as a new attempt: older
# writers are fenced off and a worker that takes the job later finds it completed. A task
# waiting for input is never held, whatever lease its last worker is still releasing.
REQUEST_CANCEL = (
    _ADD_EVENTS
    + """
local cur = redis.call('HMGET', KEYS[2], 'attempt', 'seq', 'done', 'cancel_requested', 'lease_until',
  'status')
if not cur[1] then return redis.error_reply('NOTASK') end
if cur[3] == '1' then return {0} end
if not cur[4] then
  redis.call('HSET', KEYS[2], 'cancel_requested', ARGV[2], 'cancel_reason', ARGV[1])
end
if cur[5] and cur[6] ~= 'waiting' then
  local now = redis.call('TIME')
  if tonumber(cur[5]) > tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) then return {1} end
end
if cur[1] ~= ARGV[6] then return {3} end
local attempt = tonumber(cur[1]) + 1
local seq, id = add_events(KEYS[1], ARGV[3], attempt, tonumber(cur[2]), 7, tonumber(ARGV[7]))
redis.call('HSET', KEYS[2], 'attempt', attempt, 'seq', seq, 'done', 1, 'status', 'cancelled',
  'ended_at', ARGV[5], 'last_id', id)
redis.call('HDEL', KEYS[2], 'lease_owner', 'lease_until', 'pending_input', 'input_deadline')
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('EXPIRE', key, ARGV[4]) end
end
return {2, id}
"""
)

# KEYS: events, dead
# ARGV: group, entry id, reason, consumer, deliveries
# Copy the entry (its own fields, so the codec still decodes it, plus dl_* fields saying
# why) to the dead-letter stream and ack it, atomically.
DEAD_LETTER = """
local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
local fields = {}
if entry[1] then
  for _, v in ipairs(entry[1][2]) do fields[#fields + 1] = v end
end
for _, v in ipairs({'dl_group', ARGV[1], 'dl_entry', ARGV[2], 'dl_reason', ARGV[3],
    'dl_consumer', ARGV[4], 'dl_deliveries', ARGV[5]}) do
  fields[#fields + 1] = v
end
redis.call('XADD', KEYS[2], '*', unpack(fields))
local ttl = redis.call('TTL', KEYS[1])
if ttl > 0 then redis.call('EXPIRE', KEYS[2], ttl) end
return redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
"""

# KEYS: events
# ARGV: group, max groups
# -> 1 created, 0 existed; errors NOTASK, GROUPLIMIT <n>
# Counting and creating in one script: concurrent readers cannot overshoot the cap.
CREATE_GROUP = """
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('NOTASK') end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
for _, g in ipairs(groups) do
  for i = 1, #g, 2 do
    if g[i] == 'name' and g[i + 1] == ARGV[1] then return 0 end
  end
end
if #groups >= tonumber(ARGV[2]) then return redis.error_reply('GROUPLIMIT ' .. #groups) end
redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0')
return 1
"""

# KEYS: events, dead
# ARGV: dead-letter entry id, group, consumer, idle ms
# -> the requeued entry id; errors NODEAD (no such dead letter of this group), TRIMMED
# The dead letter goes back to the group's pending entries (XCLAIM ... FORCE creates the
# entry there, with its delivery count reset), idle long enough for any consumer of the
# group to claim it at once; the dead-letter entry is removed. All or nothing.
REQUEUE = """
local dead = redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1])
if not dead[1] then return redis.error_reply('NODEAD') end
local f = dead[1][2]
local group, entry
for i = 1, #f, 2 do
  if f[i] == 'dl_group' then group = f[i + 1] elseif f[i] == 'dl_entry' then entry = f[i + 1] end
end
if group ~= ARGV[2] or not entry then return redis.error_reply('NODEAD') end
if not redis.call('XRANGE', KEYS[1], entry, entry)[1] then return redis.error_reply('TRIMMED') end
redis.call('XCLAIM', KEYS[1], ARGV[2], ARGV[3], 0, entry, 'IDLE', ARGV[4], 'RETRYCOUNT', 0, 'FORCE', 'JUSTID')
redis.call('XDEL', KEYS[2], ARGV[1])
return entry
"""

# KEYS: meta
# ARGV: attempt, pending (JSON list of {"tool_call_id", "kind"}), deadline (ISO)
# -> 1 waiting; 0 every pending call was answered while the attempt ran (the task is
#    queued again: the caller retries the job at once); errors NOTASK, COMPLETED,
#    FENCED <attempt>, CANCELREQ (a cancel came in while the attempt ran: it must end the
#    stream itself, not wait)
# The attempt that asked for input parks the task; it is not held by any worker from here.
# ``pending`` is what the attempt knew of; answers that came in since it started were
# taken off the meta's ``pending_input`` (RECORD_INPUT), so only calls still there wait.
SET_WAITING = """
local cur = redis.call('HMGET', KEYS[1], 'attempt', 'done', 'cancel_requested', 'pending_input')
if not cur[1] then return redis.error_reply('NOTASK') end
if cur[2] == '1' then return redis.error_reply('COMPLETED') end
if cur[1] ~= ARGV[1] then return redis.error_reply('FENCED ' .. cur[1]) end
if cur[3] then return redis.error_reply('CANCELREQ') end
local open = {}
for _, item in ipairs(cjson.decode(cur[4] or '[]')) do open[item['tool_call_id']] = true end
local remaining = {}
for _, item in ipairs(cjson.decode(ARGV[2])) do
  if open[item['tool_call_id']] then remaining[#remaining + 1] = item end
end
if #remaining == 0 then
  redis.call('HSET', KEYS[1], 'status', 'queued')
  redis.call('HDEL', KEYS[1], 'pending_input', 'input_deadline')
  redis.call('HINCRBY', KEYS[1], 'resumes', 1)
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'waiting', 'pending_input', cjson.encode(remaining),
  'input_deadline', ARGV[3])
return 1
"""

# KEYS: events, meta
# ARGV: idempotency key ('' for none), answered tool_call_ids (JSON list), maxlen,
#       then the input event (t, m, g, d, x), then '1' when the input is a message the
#       task may take while it runs, and the most such messages a task keeps
# -> {seq, remaining, id, queued}; errors NOTASK, ENDED <status>, NOTWAITING <status>,
#    NOTPENDING <tool_call_id>, FINISHING, INBOXFULL <n>, WAITINGNOW (a message meant for
#    a running task found it waiting: the caller reads the task again)
# Records the input as the next event of the task. A waiting task: once nothing is pending
# it is queued again (``queued`` 1: the caller enqueues its job). Calls announced by an
# attempt still running (APPEND put them in ``pending_input``) may be answered before it
# parks the task: the input is recorded and SET_WAITING then waits for the rest only, or
# for nothing. A queued or running task takes a
# message: its seq and id join the meta's ``inbox`` (``inbox_n`` counts them), which the
# attempt reads between model turns (see CLOSE_INBOX). An idempotency key already used on
# this task returns the first reply and records nothing.
RECORD_INPUT = (
    _ADD_EVENTS
    + """
local cur = redis.call('HMGET', KEYS[2], 'status', 'done', 'seq', 'attempt', 'pending_input', 'finishing',
  'inbox')
if not cur[4] then return redis.error_reply('NOTASK') end
if ARGV[1] ~= '' then
  local prev = redis.call('HGET', KEYS[2], 'input_key:' .. ARGV[1])
  if prev then return cjson.decode(prev) end
end
if cur[2] == '1' then return redis.error_reply('ENDED ' .. cur[1]) end
local waiting = cur[1] == 'waiting'
local reply
if ARGV[9] == '1' then
  if waiting then return redis.error_reply('WAITINGNOW') end
  if cur[6] then return redis.error_reply('FINISHING') end
  local inbox = cjson.decode(cur[7] or '[]')
  if #inbox >= tonumber(ARGV[10]) then return redis.error_reply('INBOXFULL ' .. #inbox) end
  local attempt = math.max(tonumber(cur[4]), 1)
  local seq, id = add_events(KEYS[1], ARGV[3], attempt, tonumber(cur[3]), 3, 1)
  inbox[#inbox + 1] = {seq, id}
  redis.call('HSET', KEYS[2], 'seq', seq, 'last_id', id, 'inbox', cjson.encode(inbox), 'inbox_n', #inbox)
  reply = {seq, 0, id, 0}
else
  local pending = cjson.decode(cur[5] or '[]')
  if not waiting and #pending == 0 then return redis.error_reply('NOTWAITING ' .. cur[1]) end
  local answered = {}
  for _, call_id in ipairs(cjson.decode(ARGV[2])) do answered[call_id] = true end
  for call_id in pairs(answered) do
    local found = false
    for _, item in ipairs(pending) do
      if item['tool_call_id'] == call_id then found = true end
    end
    if not found then
      if waiting then return redis.error_reply('NOTPENDING ' .. call_id) end
      return redis.error_reply('NOTWAITING ' .. cur[1])
    end
  end
  local remaining = {}
  for _, item in ipairs(pending) do
    if not answered[item['tool_call_id']] then remaining[#remaining + 1] = item end
  end
  local seq, id = add_events(KEYS[1], ARGV[3], math.max(tonumber(cur[4]), 1), tonumber(cur[3]), 3, 1)
  redis.call('HSET', KEYS[2], 'seq', seq, 'last_id', id)
  local queued = 0
  if #remaining > 0 then
    redis.call('HSET', KEYS[2], 'pending_input', cjson.encode(remaining))
  elseif waiting then
    redis.call('HSET', KEYS[2], 'status', 'queued')
    redis.call('HDEL', KEYS[2], 'pending_input', 'input_deadline')
    redis.call('HINCRBY', KEYS[2], 'resumes', 1)
    queued = 1
  else
    -- answered before its attempt parked the task: SET_WAITING finds nothing to wait for
    redis.call('HDEL', KEYS[2], 'pending_input')
  end
  reply = {seq, #remaining, id, queued}
end
if ARGV[1] ~= '' then redis.call('HSET', KEYS[2], 'input_key:' .. ARGV[1], cjson.encode(reply)) end
return reply
"""
)

# KEYS: meta
# ARGV: attempt, how many messages of the inbox this attempt's agent has been given
# -> 1 closed: from now on a message is refused (FINISHING) until another attempt opens;
#    0 not closed: messages wait to be given to the agent; errors NOTASK, FENCED <attempt>
# An agent about to give its final answer closes the inbox, so that no message is taken
# once nothing will answer it: a message is refused, or answered.
CLOSE_INBOX = """
local cur = redis.call('HMGET', KEYS[1], 'attempt', 'inbox_n')
if not cur[1] then return redis.error_reply('NOTASK') end
if cur[1] ~= ARGV[1] then return redis.error_reply('FENCED ' .. cur[1]) end
if tonumber(cur[2] or '0') > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'finishing', 1)
return 1
"""

# KEYS: events, meta, dead
# ARGV: attempt, maxlen, retention_s, ended_at, final status, n, then n groups of
#       (t, m, g, d, x), the last one ``completed``
# -> {1, id} ended; {0} the task no longer waits under this attempt (answered, cancelled)
# Ends a task whose wait for input passed its deadline, as the waiting attempt.
END_WAIT = (
    _ADD_EVENTS
    + """
local cur = redis.call('HMGET', KEYS[2], 'status', 'done', 'seq', 'attempt')
if not cur[1] or cur[2] == '1' or cur[1] ~= 'waiting' or cur[4] ~= ARGV[1] then return {0} end
local seq, id = add_events(KEYS[1], ARGV[2], cur[4], tonumber(cur[3]), 6, tonumber(ARGV[6]))
redis.call('HSET', KEYS[2], 'seq', seq, 'done', 1, 'status', ARGV[5], 'ended_at', ARGV[4], 'last_id', id)
redis.call('HDEL', KEYS[2], 'pending_input', 'input_deadline')
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('EXPIRE', key, ARGV[3]) end
end
return {1, id}
"""
)
