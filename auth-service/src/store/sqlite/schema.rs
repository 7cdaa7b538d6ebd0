use rusqlite::{Connection, params};

use crate::domain::UnixMs;

/// Creates the tables if missing. Times are Unix milliseconds; hashes are 32-byte blobs.
pub(super) fn prepare(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.execute_batch(
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
            updated_at    INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS pending_codes (
            purpose            TEXT NOT NULL,
            email              TEXT NOT NULL,
            payload            TEXT NOT NULL,
            code_hash          BLOB NOT NULL,
            code_expires_at    INTEGER NOT NULL,
            last_sent_at       INTEGER NOT NULL,
            attempts_used      INTEGER NOT NULL,
            locked_until       INTEGER,
            sends_window_start INTEGER NOT NULL,
            sends_in_window    INTEGER NOT NULL,
            expires_at         INTEGER NOT NULL,
            PRIMARY KEY (purpose, email)
        );
        CREATE TABLE IF NOT EXISTS sessions (
            id           TEXT PRIMARY KEY,
            user_id      TEXT NOT NULL,
            created_at   INTEGER NOT NULL,
            last_used_at INTEGER NOT NULL,
            expires_at   INTEGER NOT NULL,
            user_agent   TEXT NOT NULL,
            client_ip    TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (user_id);
        CREATE TABLE IF NOT EXISTS refresh_tokens (
            hash       BLOB PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            used_at    INTEGER,
            expires_at INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS refresh_tokens_by_session ON refresh_tokens (session_id);
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
            last_error TEXT,
            created_at INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS mail_queue_due ON mail_queue (dead, due_at);
        ",
    )
}

pub(super) fn purge_expired(conn: &mut Connection, now: UnixMs) -> rusqlite::Result<usize> {
    let tx = conn.transaction()?;
    let mut n = tx.execute(
        "DELETE FROM pending_codes WHERE expires_at <= ?1",
        params![now],
    )?;
    n += tx.execute("DELETE FROM sessions WHERE expires_at <= ?1", params![now])?;
    n += tx.execute(
        "DELETE FROM refresh_tokens WHERE expires_at <= ?1",
        params![now],
    )?;
    n += tx.execute(
        "DELETE FROM rate_limits WHERE window_ends_at <= ?1",
        params![now],
    )?;
    tx.commit()?;
    Ok(n)
}
