//! The embedded backend: every store in one SQLite file (or in memory), the default when no
//! MongoDB / Redis is configured. Each trait method is one transaction on one connection, so
//! the multi-step rules are atomic; a background sweeper purges expired rows.
//!
//! The connection lives on one thread of its own and calls are sent to it. SQLite writes one
//! transaction at a time anyway, and one thread (rather than the runtime's blocking pool)
//! keeps the runtime free and the memory of the process bounded.

mod codes;
mod current_user;
mod events;
mod factors;
mod keys;
mod limits;
mod mail;
mod presence;
mod schema;
mod security;
mod sessions;
mod tickets;
mod users;

use std::{path::Path, sync::Arc, sync::mpsc, time::Duration};

use async_trait::async_trait;
use rusqlite::Connection;
use tokio_util::sync::CancellationToken;

use super::{Health, StoreError, StoreResult};
use crate::domain::UnixMs;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Statements the connection keeps parsed: more than the stores' distinct statements, so none
/// is parsed again.
const STATEMENT_CACHE: usize = 256;

/// `execute` and `query_row` through the connection's statement cache: each statement is
/// parsed once, not on every call. Every store here uses these instead of rusqlite's own.
pub(super) trait Cached {
    fn exec(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize>;
    fn row<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// All stores over one SQLite connection.
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    /// Bumped after each commit that wrote events; watchers wait on it.
    events: tokio::sync::watch::Sender<u64>,
    /// Whether user changes write their events here (this file is the event log), in their
    /// own transaction. Off when the event log is elsewhere (Redis).
    user_events: bool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`; `:memory:` keeps it in memory.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let conn = if path.as_os_str() == ":memory:" {
            Connection::open_in_memory()
        } else {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Internal(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            Connection::open(path)
        }
        .map_err(internal)?;
        let mut conn = conn;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        schema::prepare(&mut conn).map_err(internal)?;
        let (jobs, inbox) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite".into())
            .spawn(move || {
                // Ends when the store (every sender) is dropped.
                for job in inbox {
                    job(&mut conn);
                }
            })
            .map_err(|e| StoreError::Internal(format!("cannot start the SQLite thread: {e}")))?;
        Ok(Self {
            jobs,
            events: tokio::sync::watch::Sender::new(0),
            user_events: true,
        })
    }

    /// This store keeps users only; their events go to another log (see
    /// `store::EventsAfter`).
    pub fn without_user_events(mut self) -> Self {
        self.user_events = false;
        self
    }

    /// Runs `f` with the connection on the SQLite thread.
    async fn call<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move |conn| {
                let _ = reply.send(f(conn));
            }))
            .map_err(|_| StoreError::Internal("the SQLite thread is gone".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Internal("the SQLite thread failed".into()))?
    }

    /// Deletes everything that has expired; returns how many rows went.
    pub async fn purge_expired(&self, now: UnixMs) -> StoreResult<usize> {
        self.call(move |conn| schema::purge_expired(conn, now).map_err(internal))
            .await
    }

    /// Calls [`SqliteStore::purge_expired`] every `every` until `stop` is cancelled.
    pub async fn sweep(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            match self.purge_expired(crate::domain::now_ms()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(rows = n, "purged expired rows"),
                Err(e) => tracing::warn!(error = %e, "purging expired rows failed"),
            }
        }
    }
}

#[async_trait]
impl Health for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.call(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(internal))
            .await
    }
}

pub(crate) fn internal(e: rusqlite::Error) -> StoreError {
    StoreError::Internal(e.to_string())
}
