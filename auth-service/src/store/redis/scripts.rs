//! The Lua scripts: every change that touches more than one value runs as one script, so it is
//! atomic on the server. Scripts are sent with EVALSHA and loaded on a NOSCRIPT reply
//! (`redis::Script`), which also covers a Redis that restarted and forgot them.
//!
//! Conventions: times are Unix milliseconds passed in by the caller (never the server clock),
//! so every backend decides alike; numbers written back go through `int()` so Lua never
//! formats a time as `1.7e+12`; a script only touches the keys it is given, and those share
//! one hash tag. The first element of each reply is a status number matched in Rust.

use redis::Script;

/// `int(x)`: a Lua number as an integer string.
macro_rules! lua_int {
    () => {
        "local function int(x) return string.format('%d', x) end\n"
    };
}

/// The user's outbox: the events of a change, written by the script that makes it (in the slot
/// of the user's keys) and relayed to the log by the caller (see `redis::events`). An entry is
/// `<eid>␟<at>␟<type>␟<session>␟<detail>`; the eid makes a relay that runs twice harmless.
macro_rules! lua_outbox {
    () => {
        r#"
local function outbox_push(key, eid, at, kind, session, detail)
  redis.call('RPUSH', key, eid .. '\31' .. at .. '\31' .. kind .. '\31' .. session .. '\31' .. detail)
  redis.call('PEXPIRE', key, 86400000)
end
"#
    };
}

/// Helpers of the session scripts. KEYS: 1 record, 2 successor, 3 index.
macro_rules! lua_session {
    () => {
        r#"
local function touch_index(index)
  local top = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
  if top[2] then redis.call('PEXPIREAT', index, int(tonumber(top[2]))) end
end
local function end_session(sid)
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('ZREM', KEYS[3], sid)
  touch_index(KEYS[3])
end
-- A session that timed out is kept this long after its expiry (store::EXPIRED_SESSION_RECALL_MS).
local RECALL = 86400000
local FIELDS = {'user_id', 'created_at', 'last_used_at', 'expires_at', 'user_agent',
  'client_ip', 'refresh', 'previous', 'previous_used_at'}
-- Whether `presented` is the previous token of record `s`, inside the grace window. A use
-- stamped before the recorded one (clocks read in one order, arriving in the other) counts as
-- simultaneous: never inside a zero grace window. The rule of `store::within_grace`.
local function previous_in_grace(s, presented, now, grace)
  return s[8] == presented and math.max(now - tonumber(s[9]), 0) < grace
end
"#
    };
}

/// Helpers of the pending-request scripts. KEYS[1] is the email's requests hash: per request
/// `r:<id>` (meta), `c:<id>` (code hash), `p:<id>` (payload), and `until` (the key's expiry).
/// KEYS[2] is the email's budgets hash: `sends_ws`, `sends`, `guesses_ws`, `guesses`, `until`.
/// Needs `now` and `day` defined first.
macro_rules! lua_pending {
    () => {
        r#"
local function meta(code_expires, last_sent, attempts, verified, expires)
  return int(code_expires) .. ':' .. int(last_sent) .. ':' .. int(attempts) .. ':'
    .. int(verified) .. ':' .. int(expires)
end
-- A meta field this code cannot read (another version's, say) names no live request.
local function parse(m)
  local a, b, c, d, e = string.match(m or '', '^(%d+):(%d+):(%d+):(%d):(%d+)$')
  if not e then return nil end
  return tonumber(a), tonumber(b), tonumber(c), tonumber(d), tonumber(e)
end
-- A daily window that has ended starts again now.
local function roll(start, n)
  start = tonumber(start)
  if not start or start + day <= now then return now, 0 end
  return start, tonumber(n) or 0
end
-- A key lives until the latest time it was asked to; never shortened.
local function keep_until(key, t)
  local current = tonumber(redis.call('HGET', key, 'until')) or 0
  if t > current then
    redis.call('HSET', key, 'until', int(t))
    current = t
  end
  redis.call('PEXPIREAT', key, int(current))
end
-- Requests that ended are dropped, so the hash holds only live ones.
local function prune()
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    local rid = string.match(f, '^r:(.+)$')
    if rid then
      local _, _, _, _, e = parse(redis.call('HGET', KEYS[1], f))
      if not e or e <= now then redis.call('HDEL', KEYS[1], f, 'c:' .. rid, 'p:' .. rid) end
    end
  end
end
"#
    };
}

/// Issue a code for request ARGV[2]. KEYS: the email's requests, its budgets. ARGV: now, id,
/// has payload (1/0), payload, code hash, cooldown, max attempts, max sends per day, code
/// expiry, request keep-until, day length.
/// Reply: {0, code_expires_at, attempts_used, payload} | {1} no such request | {2} request void
/// | {3, resend_at} cooldown | {4, retry_at} the email's daily sends are spent.
pub(super) const ISSUE_CODE: &str = concat!(
    lua_int!(),
    "local now, day = tonumber(ARGV[1]), tonumber(ARGV[11])\n",
    lua_pending!(),
    r#"
local id = ARGV[2]
local cooldown, max_attempts = tonumber(ARGV[6]), tonumber(ARGV[7])
local max_sends, code_expires, expires = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
prune()
local m = redis.call('HGET', KEYS[1], 'r:' .. id)
local attempts, payload = 0, ARGV[4]
if ARGV[3] == '1' then
  if m then return redis.error_reply('ERR a pending request id was issued twice') end
else
  if not m then return {1} end
  local _, last, used = parse(m)
  if used >= max_attempts then return {2} end
  if last + cooldown > now then return {3, last + cooldown} end
  attempts = used
  payload = redis.call('HGET', KEYS[1], 'p:' .. id)
end
local b = redis.call('HMGET', KEYS[2], 'sends_ws', 'sends', 'guesses_ws', 'guesses')
local sws, sends = roll(b[1], b[2])
if sends >= max_sends then return {4, sws + day} end
local gws, guesses = roll(b[3], b[4])
redis.call('HSET', KEYS[2], 'sends_ws', int(sws), 'sends', int(sends + 1),
  'guesses_ws', int(gws), 'guesses', int(guesses))
keep_until(KEYS[2], math.max(sws + day, gws + day))
redis.call('HSET', KEYS[1], 'r:' .. id, meta(code_expires, now, attempts, 0, expires),
  'c:' .. id, ARGV[5], 'p:' .. id, payload)
keep_until(KEYS[1], expires)
return {0, code_expires, attempts, payload}
"#
);

/// Verify the code of request ARGV[2]. KEYS: the email's requests, its budgets. ARGV: now,
/// id, code hash, max attempts, max guesses per day, day length.
/// Reply: {0, payload} | {1} no such request | {2} expired | {3} request void
/// | {4, retry_at} the email's daily guesses are spent | {5, attempts remaining} wrong.
pub(super) const VERIFY_CODE: &str = concat!(
    lua_int!(),
    "local now, day = tonumber(ARGV[1]), tonumber(ARGV[6])\n",
    lua_pending!(),
    r#"
-- Constant-time comparison: every byte is looked at whatever the first difference.
local function same(a, b)
  if not a or #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do diff = bit.bor(diff, bit.bxor(string.byte(a, i), string.byte(b, i))) end
  return diff == 0
end
local id = ARGV[2]
local max_attempts, max_guesses = tonumber(ARGV[4]), tonumber(ARGV[5])
prune()
local code_expires, last, used, verified, expires = parse(redis.call('HGET', KEYS[1], 'r:' .. id))
if not expires then return {1} end
if used >= max_attempts then return {3} end
local r = redis.call('HMGET', KEYS[1], 'c:' .. id, 'p:' .. id)
local matches = same(r[1], ARGV[3])
-- A code that matched once keeps matching until the request is finished.
if verified == 1 and matches then return {0, r[2]} end
if code_expires <= now then return {2} end
local b = redis.call('HMGET', KEYS[2], 'guesses_ws', 'guesses')
local gws, guesses = roll(b[1], b[2])
if guesses >= max_guesses then return {4, gws + day} end
if matches then
  redis.call('HSET', KEYS[1], 'r:' .. id, meta(code_expires, last, used, 1, expires))
  return {0, r[2]}
end
used = used + 1
redis.call('HSET', KEYS[1], 'r:' .. id, meta(code_expires, last, used, verified, expires))
redis.call('HSET', KEYS[2], 'guesses_ws', int(gws), 'guesses', int(guesses + 1))
keep_until(KEYS[2], gws + day)
return {5, max_attempts - used}
"#
);

/// End every pending request of an email; its budgets (another key) stay. KEYS[1] the email's
/// requests.
pub(super) const FINISH_PENDING: &str = r#"
redis.call('DEL', KEYS[1])
return 1
"#;

/// Start a session. KEYS: 1 record, 2 successor, 3 index, then record and successor of each
/// eviction candidate (the user's sessions that expire first). ARGV: sid, user id, created at,
/// expires at, user agent, client ip, refresh hash (hex), sign-in methods, max sessions,
/// candidate ids.
/// Reply: {0, evicted ids...} | {1} more candidates needed (nothing changed but the removal of
/// index entries of sessions that had already expired).
pub(super) const CREATE_SESSION: &str = concat!(
    lua_int!(),
    lua_session!(),
    lua_outbox!(),
    r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('ERR session exists') end
-- Index entries of sessions that expired (their keys are gone with the same expiry).
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[3])
local n, max = redis.call('ZCARD', KEYS[3]), tonumber(ARGV[9])
-- Only candidates still in the index count; with too few, change nothing and ask for more.
local present = 0
for i = 10, #ARGV do
  if redis.call('ZSCORE', KEYS[3], ARGV[i]) then present = present + 1 end
end
if n - present >= max then return {1} end
local evicted = {0}
local i = 1
while n >= max do
  local victim = ARGV[9 + i]
  local k = 4 + (i - 1) * 2
  if redis.call('ZREM', KEYS[3], victim) == 1 then
    n = n - 1
    if redis.call('DEL', KEYS[k], KEYS[k + 1]) > 0 then
      table.insert(evicted, victim)
      outbox_push(KEYS[#KEYS], 'r:' .. victim, ARGV[3], 'session.revoked', victim, 'evicted')
    end
  end
  i = i + 1
end
redis.call('HSET', KEYS[1], 'user_id', ARGV[2], 'created_at', ARGV[3], 'last_used_at', ARGV[3],
  'expires_at', ARGV[4], 'user_agent', ARGV[5], 'client_ip', ARGV[6], 'refresh', ARGV[7],
  'sign_in', ARGV[8])
redis.call('PEXPIREAT', KEYS[1], int(tonumber(ARGV[4]) + RECALL))
redis.call('DEL', KEYS[2])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
touch_index(KEYS[3])
outbox_push(KEYS[#KEYS], 'c:' .. ARGV[1], ARGV[3], 'session.created', ARGV[1], '')
return evicted
"#
);

/// Present a refresh token (see `SessionStore::rotate_refresh`). KEYS: session keys.
/// ARGV: sid, now, presented hash, next hash, next sealed, next expiry, grace ms, max lifetime.
/// Reply: {0} invalid | {1, user, created, last used, expires, agent, ip} rotated
/// | {2, user} reuse: session ended | {3, user, created, last used, expires, agent, ip, sealed}
/// | {4, user} timed out: session ended.
pub(super) const ROTATE_REFRESH: &str = concat!(
    lua_int!(),
    lua_session!(),
    lua_outbox!(),
    r#"
local sid, now, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[7])
local s = redis.call('HMGET', KEYS[1], unpack(FIELDS))
if not s[1] then return {0} end
-- The rule of `store::session_timed_out`: past the idle deadline or the maximum lifetime.
local limit = tonumber(s[2]) + tonumber(ARGV[8])
if tonumber(s[4]) <= now or limit <= now then
  if s[7] ~= ARGV[3] and s[8] ~= ARGV[3] then return {0} end
  end_session(sid)
  outbox_push(KEYS[4], 'r:' .. sid, ARGV[2], 'session.revoked', sid, 'expired')
  return {4, s[1]}
end
if s[7] == ARGV[3] then
  -- `store::rotated_expiry`.
  local expires = int(math.min(math.max(tonumber(s[4]), tonumber(ARGV[6])), limit))
  redis.call('HSET', KEYS[1], 'previous', s[7], 'previous_used_at', ARGV[2], 'refresh', ARGV[4],
    'last_used_at', ARGV[2], 'expires_at', expires)
  redis.call('PEXPIREAT', KEYS[1], int(tonumber(expires) + RECALL))
  -- The successor is kept sealed for the grace window only (none without one); relative to
  -- Redis's clock, so a service clock behind it cannot make it die on arrival.
  if grace > 0 then
    redis.call('SET', KEYS[2], ARGV[5], 'PX', int(grace))
  else
    redis.call('DEL', KEYS[2])
  end
  redis.call('ZADD', KEYS[3], expires, sid)
  touch_index(KEYS[3])
  return {1, s[1], s[2], ARGV[2], expires, s[5], s[6]}
end
if previous_in_grace(s, ARGV[3], now, grace) then
  local sealed = redis.call('GET', KEYS[2])
  if sealed then return {3, s[1], s[2], s[3], s[4], s[5], s[6], sealed} end
  -- Inside the window by our clock but gone by Redis's (skew): refused, not a replay.
  return {0}
end
if s[8] ~= ARGV[3] then return {0} end
-- The previous token after the grace window: a replay of a stolen token.
end_session(sid)
outbox_push(KEYS[4], 'r:' .. sid, ARGV[2], 'session.revoked', sid, 'reuse_detected')
return {2, s[1]}
"#
);

/// End the session a still-usable refresh token belongs to. KEYS: session keys.
/// ARGV: sid, now, presented hash, grace ms.
/// Reply: {0} nothing ended | {1, user, created, last used, expires, agent, ip}.
pub(super) const REVOKE_BY_REFRESH: &str = concat!(
    lua_int!(),
    lua_session!(),
    lua_outbox!(),
    r#"
local sid, now, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])
local s = redis.call('HMGET', KEYS[1], unpack(FIELDS))
if not s[1] or tonumber(s[4]) <= now then return {0} end
if not (s[7] == ARGV[3] or previous_in_grace(s, ARGV[3], now, grace)) then return {0} end
end_session(sid)
outbox_push(KEYS[4], 'r:' .. sid, ARGV[2], 'session.revoked', sid, 'logout')
return {1, s[1], s[2], s[3], s[4], s[5], s[6]}
"#
);

/// End sessions of one user. KEYS: 1 the user's index, then record and successor of each
/// session, then the user's outbox. ARGV: now, reason, then the session ids in key order.
/// Reply: the ids of the sessions that existed (and so ended).
pub(super) const REVOKE_SESSIONS: &str = concat!(
    lua_int!(),
    lua_outbox!(),
    r#"
local ended = {}
for i = 3, #ARGV do
  local sid = ARGV[i]
  local k = 2 + (i - 3) * 2
  -- A session that timed out goes too, but does not count as ended now.
  local expires = tonumber(redis.call('HGET', KEYS[k], 'expires_at'))
  if expires and expires > tonumber(ARGV[1]) then
    table.insert(ended, sid)
    outbox_push(KEYS[#KEYS], 'r:' .. sid, ARGV[1], 'session.revoked', sid, ARGV[2])
  end
  redis.call('DEL', KEYS[k], KEYS[k + 1])
  redis.call('ZREM', KEYS[1], sid)
end
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] then redis.call('PEXPIREAT', KEYS[1], int(tonumber(top[2]))) end
return ended
"#
);

/// Count one event in a fixed window. KEYS[1] counter. ARGV: now, limit, window end.
/// Reply: {1, count} counted | {0, window_end} over the limit (not counted).
pub(super) const RATE_LIMIT_HIT: &str = r#"
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local r = redis.call('HMGET', KEYS[1], 'count', 'window_ends_at')
if r[1] and tonumber(r[2]) > now then
  if tonumber(r[1]) >= limit then return {0, tonumber(r[2])} end
  return {1, redis.call('HINCRBY', KEYS[1], 'count', 1)}
end
redis.call('HSET', KEYS[1], 'count', 1, 'window_ends_at', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return {1, 1}
"#;

/// Queue a message. KEYS: due, sealed, attempts. ARGV: id, sealed bytes, now.
pub(super) const MAIL_ENQUEUE: &str = r#"
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], 0)
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"#;

/// Lease the oldest due message: its due time moves to the end of the lease and its attempt
/// count goes up in the same step, so no other worker can take it while the lease holds.
/// KEYS: due, sealed, attempts. ARGV: now, lease end. Reply: {} | {id, sealed, attempts}.
pub(super) const MAIL_CLAIM: &str = r#"
for _ = 1, 16 do
  local id = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)[1]
  if not id then return {} end
  local sealed = redis.call('HGET', KEYS[2], id)
  if sealed then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    return {id, sealed, redis.call('HINCRBY', KEYS[3], id, 1)}
  end
  -- An id without a body can never be sent: drop it from the schedule.
  redis.call('ZREM', KEYS[1], id)
end
return {}
"#;

/// Reschedule a live message. KEYS: due, sealed, errors. ARGV: id, due at, error.
pub(super) const MAIL_RETRY: &str = r#"
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
return redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[2], ARGV[1])
"#;

/// Move a message to the dead letters. KEYS: due, sealed, errors, dead. ARGV: id, error, now.
pub(super) const MAIL_DEAD_LETTER: &str = r#"
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
"#;

/// Delete dead letters that died before ARGV[1], at most ARGV[2] of them.
/// KEYS: dead, sealed, attempts, errors. Reply: how many went.
pub(super) const MAIL_PURGE_DEAD: &str = r#"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(ids) do
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
  redis.call('ZREM', KEYS[1], id)
end
return #ids
"#;

/// Forget a message (sent, or removed by an operator). KEYS: due, sealed, attempts, errors,
/// dead. ARGV: id.
pub(super) const MAIL_COMPLETE: &str = r#"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return redis.call('ZREM', KEYS[5], ARGV[1])
"#;

/// Helpers of the event scripts. KEYS: 1 log (stream), 2 floor (the id of the newest event
/// trimmed: a reader whose last id is below it missed some).
macro_rules! lua_events {
    () => {
        r#"
local function parse_id(id)
  local ms, seq = string.match(id or '', '^(%d+)-(%d+)$')
  return tonumber(ms) or 0, tonumber(seq) or 0
end
-- Raises the floor to `id` (never lowers it).
local function raise_floor(id)
  local fm, fs = parse_id(redis.call('GET', KEYS[2]))
  local im, is = parse_id(id)
  if im > fm or (im == fm and is > fs) then
    redis.call('SET', KEYS[2], id)
  end
end
-- Removes the oldest entries beyond `keep`, at most 10 000 per call (so one call stays
-- short; the periodic trim calls again), raising the floor to the newest one removed.
local function cap(keep)
  local excess = math.min(redis.call('XLEN', KEYS[1]) - keep, 10000)
  if excess <= 0 then return 0 end
  local gone = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', excess)
  local last = gone[#gone][1]
  raise_floor(last)
  local ms, seq = parse_id(last)
  return redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-%d', ms, seq + 1))
end
"#
    };
}

/// Appends events. ARGV: now, max length, then per event type, user, session, detail. The
/// length is capped first (so the floor names the newest event removed); the periodic trim
/// cuts by time. The log and the floor never expire: an idle log keeps its positions, and
/// both are bounded by the cap and the trim.
pub(super) const APPEND_EVENTS: &str = concat!(
    lua_int!(),
    lua_events!(),
    r#"
local now, max = tonumber(ARGV[1]), tonumber(ARGV[2])
local n = math.floor((#ARGV - 2) / 4)
cap(math.max(max - n, 0))
for i = 3, #ARGV, 4 do
  local entry = {'at', int(now), 't', ARGV[i], 'u', ARGV[i + 1]}
  if ARGV[i + 2] ~= '' then table.insert(entry, 's'); table.insert(entry, ARGV[i + 2]) end
  if ARGV[i + 3] ~= '' then table.insert(entry, 'd'); table.insert(entry, ARGV[i + 3]) end
  redis.call('XADD', KEYS[1], '*', unpack(entry))
end
-- Keys an earlier version gave a TTL keep none now.
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[2])
return {0}
"#
);

/// Relays outbox entries of one user to the log. KEYS: 1 log, 2 floor, 3 relayed (eid → when,
/// so an entry relayed twice is logged once). ARGV: now, retention, max length, user, then the
/// entries (see `lua_outbox!`). Returns {0, logged}.
pub(super) const RELAY_EVENTS: &str = concat!(
    lua_int!(),
    lua_events!(),
    r#"
local now, retention, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local logged = 0
for i = 5, #ARGV do
  local eid, at, kind, session, detail =
    string.match(ARGV[i], '^([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)$')
  if eid and not redis.call('ZSCORE', KEYS[3], eid) then
    cap(math.max(max - 1, 0))
    local entry = {'at', at, 't', kind, 'u', ARGV[4]}
    if session ~= '' then table.insert(entry, 's'); table.insert(entry, session) end
    if detail ~= '' then table.insert(entry, 'd'); table.insert(entry, detail) end
    redis.call('XADD', KEYS[1], '*', unpack(entry))
    redis.call('ZADD', KEYS[3], now, eid)
    logged = logged + 1
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', int(now - retention))
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(max + 1))
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[2])
redis.call('PEXPIRE', KEYS[3], int(retention))
return {0, logged}
"#
);

/// Drops relayed entries from the head of an outbox. KEYS: 1 outbox. ARGV: the entries, in
/// order; stops at the first that is not at the head (another relay took it).
pub(super) const OUTBOX_ACK: &str = r#"
for i = 1, #ARGV do
  if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[i] then break end
  redis.call('LPOP', KEYS[1])
end
return {0}
"#;

/// Trims events below `before` (ms) and beyond `max`. ARGV: before, max. Returns
/// {0, removed}.
pub(super) const TRIM_EVENTS: &str = concat!(
    lua_int!(),
    lua_events!(),
    r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0} end
local before = int(tonumber(ARGV[1]))
local removed = 0
local last = nil
if tonumber(before) > 0 then
  last = redis.call('XREVRANGE', KEYS[1], '(' .. before .. '-0', '-', 'COUNT', 1)[1]
end
if last then
  raise_floor(last[1])
  removed = redis.call('XTRIM', KEYS[1], 'MINID', before)
end
removed = removed + cap(tonumber(ARGV[2]))
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[2])
return {0, removed}
"#
);

/// Helpers of the presence scripts. KEYS[1] is the user's presence hash: `s:<sid>` =
/// `<expires_at>:<status>` per heartbeating session, `status` (last derived), `seen`, and
/// `evseq` (numbers its presence events); the last key is the user's outbox.
/// `settle` derives the status as `store::derive_status` does, drops run-out heartbeats,
/// stores it, and replies `{0, status, seen, changed, latest live expiry}`.
macro_rules! lua_presence {
    () => {
        r#"
local function settle(now, seen, keep)
  local all = redis.call('HGETALL', KEYS[1])
  local derived, latest = 'offline', 0
  for i = 1, #all, 2 do
    local f, v = all[i], all[i + 1]
    if string.sub(f, 1, 2) == 's:' then
      local exp, st = string.match(v, '^(%d+):(%a+)$')
      exp = tonumber(exp)
      if not exp or exp <= now then
        redis.call('HDEL', KEYS[1], f)
      else
        if exp > latest then latest = exp end
        if st == 'online' then derived = 'online'
        elseif st == 'away' and derived ~= 'online' then derived = 'away' end
      end
    end
  end
  local previous = redis.call('HGET', KEYS[1], 'status') or 'offline'
  local at = tonumber(redis.call('HGET', KEYS[1], 'seen'))
  if seen or not at then at = now end
  redis.call('HSET', KEYS[1], 'status', derived, 'seen', int(at))
  redis.call('PEXPIRE', KEYS[1], int(keep))
  local changed = 0
  if derived ~= previous then
    changed = 1
    local n = redis.call('HINCRBY', KEYS[1], 'evseq', 1)
    outbox_push(KEYS[#KEYS], 'p:' .. KEYS[1] .. ':' .. n, int(now), 'presence.changed', '', derived)
  end
  return {0, derived, int(at), changed, int(latest)}
end
"#
    };
}

/// A heartbeat. KEYS: 1 presence hash, 2 the session's record, 3 the user's outbox. ARGV: sid,
/// uid, now, ttl, status, keep. {1} when the session is not a live session of this user.
pub(super) const HEARTBEAT: &str = concat!(
    lua_int!(),
    lua_outbox!(),
    lua_presence!(),
    r#"
local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local owner = redis.call('HGET', KEYS[2], 'user_id')
local expires = tonumber(redis.call('HGET', KEYS[2], 'expires_at'))
if owner ~= ARGV[2] or not expires or expires <= now then return {1} end
redis.call('HSET', KEYS[1], 's:' .. ARGV[1], int(now + ttl) .. ':' .. ARGV[5])
return settle(now, true, tonumber(ARGV[6]))
"#
);

/// Ends the presence of ended sessions. KEYS: 1 presence hash, 2 outbox. ARGV: now, keep, sid...
/// {1} when none of them had any.
pub(super) const END_PRESENCE: &str = concat!(
    lua_int!(),
    lua_outbox!(),
    lua_presence!(),
    r#"
local ended = 0
for i = 3, #ARGV do ended = ended + redis.call('HDEL', KEYS[1], 's:' .. ARGV[i]) end
if ended == 0 then return {1} end
return settle(tonumber(ARGV[1]), true, tonumber(ARGV[2]))
"#
);

/// Settles a user whose last heartbeat may have run out. KEYS: 1 presence hash, 2 outbox.
/// ARGV: now, keep. {1} when the user has no presence.
pub(super) const EXPIRE_PRESENCE: &str = concat!(
    lua_int!(),
    lua_outbox!(),
    lua_presence!(),
    r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {1} end
return settle(tonumber(ARGV[1]), false, tonumber(ARGV[2]))
"#
);

/// Takes a user off the due list unless a heartbeat moved its time past `now`. KEYS: 1 due.
/// ARGV: uid, now.
pub(super) const PRESENCE_UNDUE: &str = r#"
local at = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if at and at <= tonumber(ARGV[2]) then redis.call('ZREM', KEYS[1], ARGV[1]) end
return {0}
"#;

/// Every script, hashed once.
pub(super) struct Scripts {
    pub issue_code: Script,
    pub verify_code: Script,
    pub finish_pending: Script,
    pub create_session: Script,
    pub rotate_refresh: Script,
    pub revoke_by_refresh: Script,
    pub revoke_sessions: Script,
    pub rate_limit_hit: Script,
    pub mail_enqueue: Script,
    pub mail_claim: Script,
    pub mail_retry: Script,
    pub mail_dead_letter: Script,
    pub mail_purge_dead: Script,
    pub mail_complete: Script,
    pub append_events: Script,
    pub relay_events: Script,
    pub outbox_ack: Script,
    pub trim_events: Script,
    pub heartbeat: Script,
    pub end_presence: Script,
    pub expire_presence: Script,
    pub presence_undue: Script,
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            issue_code: Script::new(ISSUE_CODE),
            verify_code: Script::new(VERIFY_CODE),
            finish_pending: Script::new(FINISH_PENDING),
            create_session: Script::new(CREATE_SESSION),
            rotate_refresh: Script::new(ROTATE_REFRESH),
            revoke_by_refresh: Script::new(REVOKE_BY_REFRESH),
            revoke_sessions: Script::new(REVOKE_SESSIONS),
            rate_limit_hit: Script::new(RATE_LIMIT_HIT),
            mail_enqueue: Script::new(MAIL_ENQUEUE),
            mail_claim: Script::new(MAIL_CLAIM),
            mail_retry: Script::new(MAIL_RETRY),
            mail_dead_letter: Script::new(MAIL_DEAD_LETTER),
            mail_purge_dead: Script::new(MAIL_PURGE_DEAD),
            mail_complete: Script::new(MAIL_COMPLETE),
            append_events: Script::new(APPEND_EVENTS),
            relay_events: Script::new(RELAY_EVENTS),
            outbox_ack: Script::new(OUTBOX_ACK),
            trim_events: Script::new(TRIM_EVENTS),
            heartbeat: Script::new(HEARTBEAT),
            end_presence: Script::new(END_PRESENCE),
            expire_presence: Script::new(EXPIRE_PRESENCE),
            presence_undue: Script::new(PRESENCE_UNDUE),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_session_scripts_keep_a_timed_out_session_as_long_as_the_store_says() {
        let line = format!(
            "local RECALL = {}\n",
            crate::store::EXPIRED_SESSION_RECALL_MS
        );
        assert!(super::ROTATE_REFRESH.contains(&line));
        assert!(super::CREATE_SESSION.contains(&line));
    }
}
