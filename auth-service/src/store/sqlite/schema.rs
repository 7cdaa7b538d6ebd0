//! The embedded backend's tables, created when a file is opened or upgraded from an older
//! layout (`PRAGMA user_version`), and the sweeper's purge of expired rows. The mail queue is
//! not swept here: the mail worker purges its dead letters.

use rusqlite::{Connection, OptionalExtension, params};

use crate::domain::UnixMs;

/// The schema this code writes; `PRAGMA user_version` records the one a file has.
const VERSION: i64 = 6;

/// Creates the tables if missing, or brings an older file up to [`VERSION`]. Times are Unix
/// milliseconds; hashes are 32-byte blobs.
pub(super) fn prepare(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Immediate: two processes opening one old file upgrade it one after the other.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < 2 {
        upgrade_to_2(&tx)?;
    }
    if version < 3
        && table_exists(&tx, "users")?
        && !has_column(&tx, "users", "username_changed_at")?
    {
        tx.execute_batch("ALTER TABLE users ADD COLUMN username_changed_at INTEGER;")?;
    }
    if version < 4 && table_exists(&tx, "sessions")? && !has_column(&tx, "sessions", "sign_in")? {
        tx.execute_batch("ALTER TABLE sessions ADD COLUMN sign_in TEXT NOT NULL DEFAULT '';")?;
    }
    if version < 6 && table_exists(&tx, "users")? && !has_column(&tx, "users", "disabled")? {
        tx.execute_batch("ALTER TABLE users ADD COLUMN disabled TEXT;")?;
    }
    tx.execute_batch(
        "
        CREATE TABLE IF NOT EXISTS users (
            id            TEXT PRIMARY KEY,
            username      TEXT NOT NULL,
            username_key  TEXT NOT NULL UNIQUE,
            email         TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            bio           TEXT NOT NULL DEFAULT '',
            avatar_url    TEXT NOT NULL DEFAULT '',
            status        TEXT NOT NULL DEFAULT 'offline',
            last_seen     INTEGER,
            friend_ids    TEXT NOT NULL DEFAULT '[]',
            created_at    INTEGER NOT NULL,
            updated_at    INTEGER NOT NULL,
            username_changed_at INTEGER,
            -- An operator's suspension: JSON {reason, at, until}, NULL when none.
            disabled      TEXT
        );
        -- One row per pending registration or reset, keyed by its random id.
        CREATE TABLE IF NOT EXISTS pending_requests (
            purpose         TEXT NOT NULL,
            id              TEXT NOT NULL,
            email           TEXT NOT NULL,
            payload         TEXT NOT NULL,
            code_hash       BLOB NOT NULL,
            code_expires_at INTEGER NOT NULL,
            last_sent_at    INTEGER NOT NULL,
            attempts_used   INTEGER NOT NULL,
            verified        INTEGER NOT NULL DEFAULT 0,
            expires_at      INTEGER NOT NULL,
            PRIMARY KEY (purpose, id)
        );
        CREATE INDEX IF NOT EXISTS pending_requests_by_email ON pending_requests (purpose, email);
        -- The daily budgets of one email, shared by all its pending requests.
        CREATE TABLE IF NOT EXISTS code_budgets (
            purpose              TEXT NOT NULL,
            email                TEXT NOT NULL,
            sends_window_start   INTEGER NOT NULL,
            sends                INTEGER NOT NULL,
            guesses_window_start INTEGER NOT NULL,
            guesses              INTEGER NOT NULL,
            expires_at           INTEGER NOT NULL,
            PRIMARY KEY (purpose, email)
        );
        -- refresh_hash: the current refresh token; previous_hash: the one before it (a replay
        -- of it ends the session); successor: the current token sealed, kept only until
        -- successor_until (the grace window) to answer a benign replay of the previous one.
        CREATE TABLE IF NOT EXISTS sessions (
            id               TEXT PRIMARY KEY,
            user_id          TEXT NOT NULL,
            created_at       INTEGER NOT NULL,
            last_used_at     INTEGER NOT NULL,
            expires_at       INTEGER NOT NULL,
            user_agent       TEXT NOT NULL,
            client_ip        TEXT NOT NULL,
            refresh_hash     BLOB NOT NULL,
            previous_hash    BLOB,
            previous_used_at INTEGER,
            successor        BLOB,
            successor_until  INTEGER,
            -- How the session signed in: 'password', 'password+totp', ... ('' before v4).
            sign_in          TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (user_id, last_used_at);
        CREATE TABLE IF NOT EXISTS rate_limits (
            key            TEXT PRIMARY KEY,
            count          INTEGER NOT NULL,
            window_ends_at INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS mail_queue (
            id         TEXT PRIMARY KEY,
            sealed     BLOB NOT NULL,
            attempts   INTEGER NOT NULL DEFAULT 0,
            due_at     INTEGER NOT NULL,
            dead       INTEGER NOT NULL DEFAULT 0,
            dead_at    INTEGER,
            last_error TEXT,
            created_at INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS mail_queue_due ON mail_queue (dead, due_at);
        -- The event log WatchEvents streams: written in the transaction of the change it
        -- reports, kept for EVENT_RETENTION. `detail` is the reason, status or changed fields.
        CREATE TABLE IF NOT EXISTS events (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            at         INTEGER NOT NULL,
            type       TEXT NOT NULL,
            user_id    TEXT NOT NULL,
            session_id TEXT NOT NULL DEFAULT '',
            detail     TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX IF NOT EXISTS events_by_time ON events (at);
        -- Presence: one row per session that heartbeat, live until expires_at; and per user
        -- the status last derived from them (to see transitions) and when they were last seen.
        CREATE TABLE IF NOT EXISTS presence (
            session_id TEXT PRIMARY KEY,
            user_id    TEXT NOT NULL,
            status     TEXT NOT NULL,
            expires_at INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS presence_by_user ON presence (user_id, expires_at);
        CREATE INDEX IF NOT EXISTS presence_by_expiry ON presence (expires_at);
        CREATE TABLE IF NOT EXISTS user_presence (
            user_id   TEXT PRIMARY KEY,
            status    TEXT NOT NULL,
            last_seen INTEGER NOT NULL
        );
        -- The sweep looks only at users not offline.
        CREATE INDEX IF NOT EXISTS user_presence_present ON user_presence (user_id)
            WHERE status != 'offline';
        -- The highest event id the retention removed: a watcher resuming before it missed some.
        CREATE TABLE IF NOT EXISTS events_trimmed (
            one     INTEGER PRIMARY KEY CHECK (one = 1),
            last_id INTEGER NOT NULL
        );
        -- Second factors: the TOTP secret sealed to its user, the last step a code was
        -- accepted for (each step once), and the keyed hashes of unused recovery codes.
        CREATE TABLE IF NOT EXISTS totp_factors (
            user_id       TEXT PRIMARY KEY,
            sealed_secret BLOB NOT NULL,
            last_step     INTEGER NOT NULL,
            enabled_at    INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS recovery_codes (
            user_id TEXT NOT NULL,
            hash    BLOB NOT NULL,
            PRIMARY KEY (user_id, hash)
        );
        -- The users' security logs, kept AUDIT_RETENTION; ids are UUID v7 (time-ordered).
        CREATE TABLE IF NOT EXISTS security_events (
            id         TEXT PRIMARY KEY,
            user_id    TEXT NOT NULL,
            at         INTEGER NOT NULL,
            kind       TEXT NOT NULL,
            detail     TEXT NOT NULL DEFAULT '',
            ip         TEXT NOT NULL DEFAULT '',
            user_agent TEXT NOT NULL DEFAULT '',
            session_id TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX IF NOT EXISTS security_events_by_user ON security_events (user_id, id);
        CREATE INDEX IF NOT EXISTS security_events_by_time ON security_events (at);
        -- Short-lived state of multi-step flows (MFA challenges, enrollments), single use.
        CREATE TABLE IF NOT EXISTS tickets (
            kind       TEXT NOT NULL,
            id         TEXT NOT NULL,
            payload    TEXT NOT NULL,
            expires_at INTEGER NOT NULL,
            PRIMARY KEY (kind, id)
        );
        CREATE INDEX IF NOT EXISTS tickets_by_expiry ON tickets (expires_at);
        -- The signing keys of the automatic rotation: one row, its version (each write
        -- names the one it read) and the keys, sealed with AUTH_SECRET, as JSON.
        CREATE TABLE IF NOT EXISTS signing_key_ring (
            id      INTEGER PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL,
            keys    TEXT NOT NULL
        );
        -- Passkeys: the credential as the relying party keeps it (public key, flags) and its
        -- sign counter, which a use may only raise.
        CREATE TABLE IF NOT EXISTS passkeys (
            user_id      TEXT NOT NULL,
            id           TEXT NOT NULL,
            name         TEXT NOT NULL,
            credential   TEXT NOT NULL,
            counter      INTEGER NOT NULL,
            backed_up    INTEGER NOT NULL,
            created_at   INTEGER NOT NULL,
            last_used_at INTEGER,
            PRIMARY KEY (user_id, id)
        );
        ",
    )?;
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()
}

/// Version 1 kept every refresh token of a session until it expired, and one pending request
/// per email. Sessions keep their current token (the unused one); pending requests are
/// short-lived, so they are dropped (a sign-up in flight starts again).
fn upgrade_to_2(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    if table_exists(tx, "refresh_tokens")? && !has_column(tx, "sessions", "refresh_hash")? {
        tx.execute_batch(
            "
            ALTER TABLE sessions ADD COLUMN refresh_hash BLOB;
            ALTER TABLE sessions ADD COLUMN previous_hash BLOB;
            ALTER TABLE sessions ADD COLUMN previous_used_at INTEGER;
            ALTER TABLE sessions ADD COLUMN successor BLOB;
            ALTER TABLE sessions ADD COLUMN successor_until INTEGER;
            UPDATE sessions SET refresh_hash = (
                SELECT hash FROM refresh_tokens r
                WHERE r.session_id = sessions.id AND r.used_at IS NULL
                ORDER BY r.expires_at DESC LIMIT 1);
            DELETE FROM sessions WHERE refresh_hash IS NULL;
            DROP TABLE refresh_tokens;
            DROP INDEX IF EXISTS sessions_by_user;
            ",
        )?;
    }
    tx.execute_batch("DROP TABLE IF EXISTS pending_codes;")?;
    if table_exists(tx, "mail_queue")? && !has_column(tx, "mail_queue", "dead_at")? {
        tx.execute_batch(
            "ALTER TABLE mail_queue ADD COLUMN dead_at INTEGER;
             UPDATE mail_queue SET dead_at = created_at WHERE dead = 1;",
        )?;
    }
    Ok(())
}

fn table_exists(tx: &rusqlite::Transaction<'_>, table: &str) -> rusqlite::Result<bool> {
    tx.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        params![table],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
}

fn has_column(tx: &rusqlite::Transaction<'_>, table: &str, column: &str) -> rusqlite::Result<bool> {
    tx.query_row(
        &format!("SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"),
        params![column],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
}

pub(super) fn purge_expired(conn: &mut Connection, now: UnixMs) -> rusqlite::Result<usize> {
    let tx = conn.transaction()?;
    let mut n = tx.execute(
        "DELETE FROM pending_requests WHERE expires_at <= ?1",
        params![now],
    )?;
    n += tx.execute(
        "DELETE FROM code_budgets WHERE expires_at <= ?1",
        params![now],
    )?;
    // A session that timed out is kept a while to answer its token with SESSION_EXPIRED.
    n += tx.execute(
        "DELETE FROM sessions WHERE expires_at <= ?1",
        params![now - crate::store::EXPIRED_SESSION_RECALL_MS],
    )?;
    // A sealed successor is kept for the grace window only.
    n += tx.execute(
        "UPDATE sessions SET successor = NULL, successor_until = NULL \
         WHERE successor_until <= ?1",
        params![now],
    )?;
    n += tx.execute(
        "DELETE FROM rate_limits WHERE window_ends_at <= ?1",
        params![now],
    )?;
    n += tx.execute("DELETE FROM tickets WHERE expires_at <= ?1", params![now])?;
    tx.commit()?;
    Ok(n)
}
