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

/// Helpers of the session scripts. KEYS: 1 record, 2 refresh, 3 refresh expiry, 4 index.
macro_rules! lua_session {
    () => {
        r#"
local function touch_index(index)
  local top = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
  if top[2] then redis.call('PEXPIREAT', index, int(tonumber(top[2]))) end
end
local function end_session(sid)
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  redis.call('ZREM', KEYS[4], sid)
  touch_index(KEYS[4])
end
local function token(raw)
  local exp, used = string.match(raw, '^(%d+):(%d*)$')
  return tonumber(exp), tonumber(used)
end
"#
    };
}

/// Issue a code. KEYS[1] pending record. ARGV: now, has payload (1/0), payload, code hash,
/// cooldown, max sends per day, code expiry, record keep-until, day length.
/// Reply: {0, code_expires_at, attempts_used} | {1, locked_until} | {2, resend_at}
/// | {3, retry_at} | {4} (no live request to resend).
pub(super) const ISSUE_CODE: &str = concat!(
    lua_int!(),
    r#"
local now, cooldown = tonumber(ARGV[1]), tonumber(ARGV[5])
local max_sends, day = tonumber(ARGV[6]), tonumber(ARGV[9])
local r = redis.call('HMGET', KEYS[1], 'payload', 'last_sent_at', 'attempts_used',
  'locked_until', 'window_start', 'sends', 'expires_at')
local payload, attempts, window_start, sends
if r[1] and tonumber(r[7]) > now then
  local locked = r[4] and tonumber(r[4])
  if locked and locked > now then return {1, locked} end
  local last = tonumber(r[2])
  if last + cooldown > now then return {2, last + cooldown} end
  window_start, sends = tonumber(r[5]), tonumber(r[6])
  if window_start + day <= now then window_start, sends = now, 0 end
  if sends >= max_sends then return {3, window_start + day} end
  -- A lockout that ran out gives a fresh budget; otherwise wrong guesses carry over.
  if locked then attempts = 0 else attempts = tonumber(r[3]) end
  if ARGV[2] == '1' then payload = ARGV[3] else payload = r[1] end
else
  if ARGV[2] ~= '1' then return {4} end
  payload, attempts, window_start, sends = ARGV[3], 0, now, 0
end
local expires = math.max(tonumber(ARGV[8]), window_start + day)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'payload', payload, 'code_hash', ARGV[4],
  'code_expires_at', ARGV[7], 'last_sent_at', ARGV[1], 'attempts_used', int(attempts),
  'window_start', int(window_start), 'sends', int(sends + 1), 'expires_at', int(expires))
redis.call('PEXPIREAT', KEYS[1], int(expires))
return {0, tonumber(ARGV[7]), attempts}
"#
);

/// Verify a code. KEYS[1] pending record. ARGV: now, code hash, max attempts, lock-until.
/// Reply: {0, payload} | {1} not found | {2} expired | {3, locked_until} | {4, remaining}.
pub(super) const VERIFY_CODE: &str = concat!(
    lua_int!(),
    r#"
-- Constant-time comparison: every byte is looked at whatever the first difference.
local function same(a, b)
  if #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do diff = bit.bor(diff, bit.bxor(string.byte(a, i), string.byte(b, i))) end
  return diff == 0
end
local now, max_attempts = tonumber(ARGV[1]), tonumber(ARGV[3])
local r = redis.call('HMGET', KEYS[1], 'payload', 'code_hash', 'code_expires_at',
  'attempts_used', 'locked_until', 'expires_at')
if not r[1] or tonumber(r[6]) <= now then return {1} end
local used = tonumber(r[4])
if used >= max_attempts then
  local locked = r[5] and tonumber(r[5])
  if locked and locked > now then return {3, locked} end
  return {2}
end
if tonumber(r[3]) <= now then return {2} end
if same(r[2], ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return {0, r[1]}
end
used = used + 1
if used >= max_attempts then
  local expires = math.max(tonumber(r[6]), tonumber(ARGV[4]))
  redis.call('HSET', KEYS[1], 'attempts_used', int(used), 'locked_until', ARGV[4],
    'expires_at', int(expires))
  redis.call('PEXPIREAT', KEYS[1], int(expires))
else
  redis.call('HSET', KEYS[1], 'attempts_used', int(used))
  redis.call('HDEL', KEYS[1], 'locked_until')
end
return {4, max_attempts - used}
"#
);

/// Start a session. KEYS: session keys. ARGV: sid, user id, created at, expires at,
/// user agent, client ip, first refresh hash (hex). Reply: 1.
pub(super) const CREATE_SESSION: &str = concat!(
    lua_int!(),
    lua_session!(),
    r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('ERR session exists') end
redis.call('HSET', KEYS[1], 'user_id', ARGV[2], 'created_at', ARGV[3], 'last_used_at', ARGV[3],
  'expires_at', ARGV[4], 'user_agent', ARGV[5], 'client_ip', ARGV[6])
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HSET', KEYS[2], ARGV[7], ARGV[4] .. ':')
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[7])
for i = 1, 3 do redis.call('PEXPIREAT', KEYS[i], ARGV[4]) end
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
touch_index(KEYS[4])
return 1
"#
);

/// Rotate a refresh token under the grace rule. KEYS: session keys. ARGV: sid, now,
/// presented hash, next hash, next expiry, grace ms.
/// Reply: {0} invalid | {1, user, created, last used, expires, agent, ip} | {2, user} reuse.
pub(super) const ROTATE_REFRESH: &str = concat!(
    lua_int!(),
    lua_session!(),
    r#"
local sid, now, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[6])
local s = redis.call('HMGET', KEYS[1], 'user_id', 'created_at', 'last_used_at', 'expires_at',
  'user_agent', 'client_ip')
if not s[1] or tonumber(s[4]) <= now then return {0} end
local raw = redis.call('HGET', KEYS[2], ARGV[3])
if not raw then return {0} end
local exp, used = token(raw)
if exp <= now then return {0} end
if not used then
  redis.call('HSET', KEYS[2], ARGV[3], int(exp) .. ':' .. ARGV[2])
-- A use stamped before the recorded one (clocks read in one order, arriving in the other)
-- counts as simultaneous: never inside a zero grace window.
elseif math.max(now - used, 0) >= grace then
  -- Used before and outside the grace window: a replay, so the whole family ends.
  end_session(sid)
  return {2, s[1]}
end
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[2])) do
  redis.call('HDEL', KEYS[2], gone)
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[4], ARGV[5] .. ':')
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[4])
local expires = int(math.max(tonumber(s[4]), tonumber(ARGV[5])))
redis.call('HSET', KEYS[1], 'last_used_at', ARGV[2], 'expires_at', expires)
for i = 1, 3 do redis.call('PEXPIREAT', KEYS[i], expires) end
redis.call('ZADD', KEYS[4], expires, sid)
touch_index(KEYS[4])
return {1, s[1], s[2], ARGV[2], expires, s[5], s[6]}
"#
);

/// End the session a still-usable refresh token belongs to. KEYS: session keys.
/// ARGV: sid, now, presented hash, grace ms.
/// Reply: {0} nothing ended | {1, user, created, last used, expires, agent, ip}.
pub(super) const REVOKE_BY_REFRESH: &str = concat!(
    lua_int!(),
    lua_session!(),
    r#"
local sid, now, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])
local s = redis.call('HMGET', KEYS[1], 'user_id', 'created_at', 'last_used_at', 'expires_at',
  'user_agent', 'client_ip')
if not s[1] or tonumber(s[4]) <= now then return {0} end
local raw = redis.call('HGET', KEYS[2], ARGV[3])
if not raw then return {0} end
local exp, used = token(raw)
if exp <= now then return {0} end
if used and math.max(now - used, 0) >= grace then return {0} end
end_session(sid)
return {1, s[1], s[2], s[3], s[4], s[5], s[6]}
"#
);

/// End sessions of one user. KEYS: 1 the user's index, then record, refresh and refresh
/// expiry of each session. ARGV: the session ids, in the same order.
/// Reply: the ids of the sessions that existed (and so ended).
pub(super) const REVOKE_SESSIONS: &str = concat!(
    lua_int!(),
    r#"
local ended = {}
for i, sid in ipairs(ARGV) do
  local k = 2 + (i - 1) * 3
  if redis.call('EXISTS', KEYS[k]) == 1 then table.insert(ended, sid) end
  redis.call('DEL', KEYS[k], KEYS[k + 1], KEYS[k + 2])
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

/// Move a message to the dead letters. KEYS: due, sealed, errors, dead. ARGV: id, error.
pub(super) const MAIL_DEAD_LETTER: &str = r#"
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return redis.call('SADD', KEYS[4], ARGV[1])
"#;

/// Forget a message (sent, or removed by an operator). KEYS: due, sealed, attempts, errors,
/// dead. ARGV: id.
pub(super) const MAIL_COMPLETE: &str = r#"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return redis.call('SREM', KEYS[5], ARGV[1])
"#;

/// Every script, hashed once.
pub(super) struct Scripts {
    pub issue_code: Script,
    pub verify_code: Script,
    pub create_session: Script,
    pub rotate_refresh: Script,
    pub revoke_by_refresh: Script,
    pub revoke_sessions: Script,
    pub rate_limit_hit: Script,
    pub mail_enqueue: Script,
    pub mail_claim: Script,
    pub mail_retry: Script,
    pub mail_dead_letter: Script,
    pub mail_complete: Script,
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            issue_code: Script::new(ISSUE_CODE),
            verify_code: Script::new(VERIFY_CODE),
            create_session: Script::new(CREATE_SESSION),
            rotate_refresh: Script::new(ROTATE_REFRESH),
            revoke_by_refresh: Script::new(REVOKE_BY_REFRESH),
            revoke_sessions: Script::new(REVOKE_SESSIONS),
            rate_limit_hit: Script::new(RATE_LIMIT_HIT),
            mail_enqueue: Script::new(MAIL_ENQUEUE),
            mail_claim: Script::new(MAIL_CLAIM),
            mail_retry: Script::new(MAIL_RETRY),
            mail_dead_letter: Script::new(MAIL_DEAD_LETTER),
            mail_complete: Script::new(MAIL_COMPLETE),
        }
    }
}
