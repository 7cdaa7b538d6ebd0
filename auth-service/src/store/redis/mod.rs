//! Redis state store: pending codes, sessions and refresh tokens, rate limits and the mail
//! queue (users stay in MongoDB or SQLite). Any number of service instances can share it.
//!
//! # Rules
//! - Every change of more than one value is one Lua script ([`scripts`]), so it is atomic on
//!   the server; there is no read-decide-write from Rust.
//! - Times are the `now` the caller passes, as in the SQLite backend, so both decide alike and
//!   tests can move time. TTLs are absolute (`PEXPIREAT`) from those times, so the service
//!   and Redis clocks must roughly agree (NTP); a record is also checked against `now`, so a
//!   key that outlives its time by a little is never mistaken for a live one.
//! - Keys one script touches share a hash tag (the part in braces) so the layout works on
//!   Redis Cluster. The test suite runs everything against a single-node cluster, where a
//!   script touching two slots fails with CROSSSLOT.
//! - Only hashes are stored: code HMACs as raw 32 bytes, refresh token SHA-256s as hex; mail
//!   and the grace-window successor token are sealed before they arrive. Nothing here ever
//!   sees a code or a refresh token in the clear.
//! - A Redis that is down or slow makes calls fail with [`StoreError::Unavailable`] within the
//!   configured timeouts (2 s by default); the pool reconnects by itself when Redis is back.
//!
//! # Key layout
//! `<prefix>` is [`RedisSettings::key_prefix`] (empty by default). Every name is built in
//! [`keys`]; the table of keys, values and TTLs (with worst-case sizes) is in the README
//! ("Redis key layout"), the one place it is written down.

//! # Why sessions are tagged by user
//! `revoke_all` (after a password reset) must end every session of a user, so the user's index
//! and the sessions it names live in one slot: `user:{<uid>}:...`. Rotation and logout only
//! know the session id (a refresh token is `<sid>.<secret>`), so `session:{<sid>}:user` maps a
//! session to its user. That pointer is written before the session and its value never
//! changes (only its expiry moves with the session's), so reading it outside the script
//! cannot race: the script then checks the session itself. If
//! the pointer's expiry ever lagged behind (its extension after a rotation is a second
//! command), the session could only end early, never live longer.
//!
//! A script names every key it touches (as Cluster wants), so `revoke_all` reads the index
//! first and then ends the listed sessions, up to 128 per script; a session that starts
//! meanwhile survives, as it would with SQLite if it started just after the `DELETE`.
//!
//! The seed's `register:<email>` / `register:ratelimit:<email>` pair became one hash per
//! purpose and email: the email's daily budgets and its pending requests (each under its own
//! id) live together, so every code script touches one key, as the SQLite rows do in one
//! transaction.
//!
//! # Connections
//! A bb8 pool of multiplexed connections: a connection is checked with PING when taken from
//! the pool, so after a Redis restart the first call already gets a fresh connection, and
//! scripts are reloaded on the NOSCRIPT reply (the PING costs one round trip per call, which
//! buys recovery without a failed call). `rediss://` URLs use TLS (rustls) with the webpki
//! roots, or with [`RedisSettings::tls_root_ca_pem`] for a private CA.
//!
//! Needs Redis 6.2 or newer (`SET ... PXAT`).
//!
//! # Redis Cluster
//! A `redis+cluster://host1:port,host2:port` URL (or [`RedisSettings::cluster`] with a list
//! of seed URLs) makes the pool hold `redis::cluster_async` connections instead: each routes a
//! command to the node of its key's slot, follows MOVED and ASK, and refreshes the topology
//! after a failover. Scripts and [`RedisStore::query_pipe`] touch one slot (one hash tag);
//! what touches many slots at once ([`RedisStore::query_each`]) is one pipeline on a single
//! server and one pipeline per master on a cluster (see `slots`).

mod codes;
mod events;
mod keys;
mod limits;
mod mail;
mod presence;
mod scripts;
mod sessions;
mod slots;
mod tickets;

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use bb8::{ErrorSink, ManageConnection, PooledConnection, RunError};
use redis::{
    AsyncConnectionConfig, Client, ErrorKind, FromRedisValue, RedisError, RedisFuture, RedisResult,
    ScriptInvocation, ServerErrorKind, TlsCertificates, Value,
    aio::{ConnectionLike, MultiplexedConnection},
    cluster::ClusterClientBuilder,
    cluster_async::ClusterConnection,
    cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr},
};

use self::{keys::Keys, scripts::Scripts};
use super::{Health, StoreError, StoreResult};

/// How to reach Redis and how long to wait for it.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// Most connections the pool opens (each is multiplexed).
    pub pool_size: u32,
    /// Longest wait for a connection from the pool, including connecting.
    pub connection_timeout: Duration,
    /// Longest time one store call may take in all; past it the call is `Unavailable`.
    pub command_timeout: Duration,
    /// Put before every key, to share one Redis between deployments (or tests). No braces.
    pub key_prefix: String,
    /// PEM root certificates for `rediss://` when the server's CA is private; `None` trusts
    /// the webpki roots.
    pub tls_root_ca_pem: Option<Vec<u8>>,
    /// How long the event log keeps events (EVENT_RETENTION).
    pub event_retention_ms: i64,
    /// Most events the log keeps (EVENT_LOG_MAX_EVENTS), whatever their age.
    pub event_max_len: u64,
    /// REDIS_CLUSTER: the URL names seed nodes of a Redis Cluster (one URL, or several
    /// separated by commas), as a `redis+cluster://` URL does.
    pub cluster: bool,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            pool_size: 16,
            connection_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
            key_prefix: String::new(),
            tls_root_ca_pem: None,
            event_retention_ms: 24 * 60 * 60 * 1000,
            event_max_len: 1_000_000,
            cluster: false,
        }
    }
}

/// Pending codes, sessions, rate limits and the mail queue in Redis.
pub struct RedisStore {
    pool: bb8::Pool<Manager>,
    /// For connections of their own (blocking reads of the event log).
    connector: Connector,
    keys: Keys,
    scripts: Scripts,
    settings: RedisSettings,
    /// The reader of the event log's tail, started by the first watcher that waits.
    tail: tokio::sync::OnceCell<events::Tail>,
    /// Whether this process looked for outboxes left behind (once, at its first trim).
    scanned_outboxes: std::sync::atomic::AtomicBool,
    /// On a cluster: which master serves which slot, as last read.
    slot_owners: slots::OwnersCache,
    last_connect_error: Arc<Mutex<Option<String>>>,
}

impl RedisStore {
    /// Opens a pool to `url` (`redis://` or `rediss://`) and checks that Redis answers.
    pub async fn connect(url: &str, settings: RedisSettings) -> StoreResult<Self> {
        let store = Self::connect_lazy(url, settings)?;
        store.ping().await?;
        Ok(store)
    }

    /// Opens a pool to `url` without waiting for Redis: calls fail as `Unavailable` until it
    /// answers. Only a malformed URL or settings fail here. Call it inside a Tokio runtime
    /// (the pool starts a reaper task).
    pub fn connect_lazy(url: &str, settings: RedisSettings) -> StoreResult<Self> {
        let config_error = |m: String| StoreError::Internal(format!("Redis settings: {m}"));
        let keys = Keys::new(&settings.key_prefix).map_err(config_error)?;
        let tls = url.trim_start().to_ascii_lowercase().starts_with("rediss");
        if tls {
            install_crypto_provider();
        }
        let root_cert = settings.tls_root_ca_pem.clone().filter(|_| tls);
        // The URL may hold a password: only the reason is reported.
        let invalid = |e: RedisError| config_error(format!("invalid Redis URL: {}", e.category()));
        let connector = match cluster_seeds(url, settings.cluster).map_err(config_error)? {
            Some(seeds) => Connector::Cluster {
                seeds: seeds
                    .iter()
                    .map(|s| redis::IntoConnectionInfo::into_connection_info(s.as_str()))
                    .collect::<Result<_, _>>()
                    .map_err(invalid)?,
                root_cert,
            },
            None => Connector::Single(
                match root_cert {
                    Some(pem) => Client::build_with_tls(
                        url,
                        TlsCertificates {
                            client_tls: None,
                            root_cert: Some(pem),
                        },
                    ),
                    None => Client::open(url),
                }
                .map_err(invalid)?,
            ),
        };
        let manager = Manager {
            connector: connector.clone(),
            connect_timeout: settings.connection_timeout,
            response_timeout: settings.command_timeout,
        };
        let last_connect_error = Arc::new(Mutex::new(None));
        let pool = bb8::Pool::builder()
            .max_size(settings.pool_size.max(1))
            .min_idle(None)
            .connection_timeout(settings.connection_timeout)
            .test_on_check_out(true)
            .error_sink(Box::new(LastError(last_connect_error.clone())))
            .build_unchecked(manager);
        Ok(Self {
            pool,
            connector,
            keys,
            scripts: Scripts::new(),
            settings,
            tail: tokio::sync::OnceCell::new(),
            scanned_outboxes: std::sync::atomic::AtomicBool::new(false),
            slot_owners: slots::OwnersCache::default(),
            last_connect_error,
        })
    }

    /// The settings this store was opened with.
    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// A pooled connection, or `Unavailable` after the connection timeout.
    async fn conn(&self) -> StoreResult<PooledConnection<'_, Manager>> {
        self.pool.get().await.map_err(|e| match e {
            RunError::User(e) => redis_error(e),
            RunError::TimedOut => {
                let cause = self
                    .last_connect_error
                    .lock()
                    .ok()
                    .and_then(|last| last.clone())
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default();
                StoreError::Unavailable(format!(
                    "no Redis connection within {:?}{cause}",
                    self.settings.connection_timeout
                ))
            }
        })
    }

    /// Bounds a whole call (pool wait included) by the command timeout.
    async fn timed<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        tokio::time::timeout(self.settings.command_timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "Redis did not answer {op} within {:?}",
                    self.settings.command_timeout
                )))
            })
    }

    /// Runs one script.
    async fn eval(&self, op: &'static str, script: &ScriptInvocation<'_>) -> StoreResult<Reply> {
        self.timed(op, async {
            let mut conn = self.conn().await?;
            let value: Value = script.invoke_async(&mut *conn).await.map_err(redis_error)?;
            Ok(Reply::from(value))
        })
        .await
    }

    /// Runs one command.
    async fn query<T: FromRedisValue>(&self, op: &'static str, cmd: &redis::Cmd) -> StoreResult<T> {
        self.timed(op, async {
            let mut conn = self.conn().await?;
            cmd.query_async(&mut *conn).await.map_err(redis_error)
        })
        .await
    }

    /// Sends several commands whose keys are in one slot in one round trip (not atomic: each
    /// is a step of its own).
    async fn query_pipe<T: FromRedisValue>(
        &self,
        op: &'static str,
        pipe: &redis::Pipeline,
    ) -> StoreResult<T> {
        self.timed(op, async {
            let mut conn = self.conn().await?;
            pipe.query_async(&mut *conn).await.map_err(redis_error)
        })
        .await
    }
}

impl RedisStore {
    /// Runs single-key commands whose keys may be in different slots, and returns their
    /// replies in order: one pipeline on a single server; on a cluster one pipeline per master
    /// (the cluster connection refuses a pipeline across slots, but a master takes one on
    /// any slots it serves), or, when that fails (a master moved since the map was read),
    /// concurrent commands that the connection routes one by one. The commands must be
    /// idempotent: on a cluster the connection re-sends a redirected pipeline whole, and the
    /// fallback sends each again (today: HGETALL, ZRANGE, DEL, SET of a fixed value).
    async fn query_each(&self, op: &'static str, cmds: Vec<redis::Cmd>) -> StoreResult<Vec<Value>> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        self.timed(op, async {
            let mut conn = self.conn().await?;
            let cluster = match &mut *conn {
                Connection::Single(c) => {
                    let mut pipe = redis::pipe();
                    for cmd in cmds {
                        pipe.add_command(cmd);
                    }
                    return pipe.query_async(c).await.map_err(redis_error);
                }
                Connection::Cluster(c) => c.clone(),
            };
            let grouped = match cmds.len() {
                1 => None,
                _ => self.query_per_master(cluster, &cmds).await,
            };
            if let Some(replies) = grouped {
                return replies;
            }
            let replies = futures_util::future::join_all(cmds.iter().map(|cmd| {
                let mut conn = (*conn).clone();
                async move { cmd.query_async::<Value>(&mut conn).await }
            }))
            .await;
            replies
                .into_iter()
                .map(|r| r.map_err(redis_error))
                .collect()
        })
        .await
    }
}

impl RedisStore {
    /// Which master serves which slot: the map read at most [`slots::FRESH_FOR`] ago, or
    /// `CLUSTER NODES` of any node now.
    async fn slot_owners(&self, c: &mut ClusterConnection) -> StoreResult<Arc<slots::SlotOwners>> {
        let owners = match self.slot_owners.fresh() {
            Some(owners) => owners,
            None => {
                let mut cmd = redis::cmd("CLUSTER");
                cmd.arg("NODES");
                let nodes = c
                    .route_command(cmd, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random))
                    .await
                    .map_err(redis_error)
                    .and_then(parse::<String>);
                // A failed read is kept too (as no master), so that calls do not ask again
                // and again: for FRESH_FOR they send their commands one by one.
                let owners = Arc::new(match &nodes {
                    Ok(nodes) => slots::SlotOwners::parse(nodes),
                    Err(_) => slots::SlotOwners::default(),
                });
                self.slot_owners.store(owners.clone());
                nodes?;
                owners
            }
        };
        if owners.masters().is_empty() {
            return Err(StoreError::Unavailable(
                "Redis: CLUSTER NODES named no master that serves a slot".into(),
            ));
        }
        Ok(owners)
    }

    /// `cmds` (single-key commands) as one pipeline per master, by the slot map; their replies
    /// in order, or the error one of them answered. `None` when a key's master is not in the
    /// map or a pipeline fails (a master moved: the connection re-sent it, redirected, until
    /// it gave up): the map may be stale, so it is forgotten, and the caller sends the
    /// commands one by one.
    async fn query_per_master(
        &self,
        mut c: ClusterConnection,
        cmds: &[redis::Cmd],
    ) -> Option<StoreResult<Vec<Value>>> {
        let owners = self.slot_owners(&mut c).await.ok()?;
        let mut groups: std::collections::HashMap<u16, (Vec<usize>, redis::Pipeline)> =
            std::collections::HashMap::new();
        for (i, cmd) in cmds.iter().enumerate() {
            let Some(redis::Arg::Simple(key)) = cmd.args_iter().nth(1) else {
                return None;
            };
            let master = owners.owner(slots::slot_of(key))?;
            let (indices, pipe) = groups
                .entry(master)
                .or_insert_with(|| (Vec::new(), redis::pipe()));
            indices.push(i);
            pipe.add_command(cmd.clone());
        }
        let replies =
            futures_util::future::join_all(groups.into_iter().map(|(master, (indices, pipe))| {
                let mut c = c.clone();
                async move {
                    let route =
                        SingleNodeRoutingInfo::SpecificNode(Route::new(master, SlotAddr::Master));
                    let count = indices.len();
                    (indices, c.route_pipeline(pipe, 0, count, route).await)
                }
            }))
            .await;
        let mut out = vec![Value::Nil; cmds.len()];
        for (indices, reply) in replies {
            let values = match reply {
                Ok(values) if values.len() == indices.len() => values,
                _ => {
                    self.slot_owners.forget();
                    return None;
                }
            };
            for (i, value) in indices.into_iter().zip(values) {
                out[i] = match value.extract_error() {
                    Ok(value) => value,
                    Err(e) => return Some(Err(redis_error(e))),
                };
            }
        }
        Some(Ok(out))
    }
}

/// A reply of [`RedisStore::query_each`] as `T`.
fn parse<T: FromRedisValue>(value: Value) -> StoreResult<T> {
    T::from_redis_value(value)
        .map_err(|e| StoreError::Internal(format!("unexpected Redis reply: {e}")))
}

#[async_trait]
impl Health for RedisStore {
    async fn ping(&self) -> StoreResult<()> {
        self.timed("ping", async {
            self.conn().await?.ping_one().await.map_err(redis_error)
        })
        .await
    }
}

impl RedisStore {
    /// Every key matching `pattern` of type `kind`: SCAN of the server, or of every master of
    /// a cluster (a cluster's SCAN walks one node).
    async fn scan_all(&self, pattern: &str, kind: &str) -> StoreResult<Vec<String>> {
        let scan = |cursor: u64| {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .arg("TYPE")
                .arg(kind);
            cmd
        };
        let mut conn = self
            .timed("scan", async { Ok((*self.conn().await?).clone()) })
            .await?;
        // A master is reached by a slot it serves (by address, a fresh connection answered
        // `ClusterConnectionNotFound`). A keyless SCAN is not redirected, and the connection
        // sends a command for a master it has no live link to to another node, so each page
        // goes with `CLUSTER MYID` on one connection, and a page from any other node fails the
        // scan (the caller tries again at its next round).
        let nodes = match &mut conn {
            Connection::Single(_) => vec![None],
            Connection::Cluster(c) => self
                .timed("scan", self.slot_owners(c))
                .await?
                .masters()
                .iter()
                .cloned()
                .map(Some)
                .collect(),
        };
        let mut found = Vec::new();
        for node in nodes {
            let mut cursor = 0u64;
            loop {
                let reply = self
                    .timed("scan", async {
                        match (&mut conn, &node) {
                            (Connection::Cluster(c), Some((slot, id))) => {
                                let at = SingleNodeRoutingInfo::SpecificNode(Route::new(
                                    *slot,
                                    SlotAddr::Master,
                                ));
                                let mut pipe = redis::pipe();
                                pipe.cmd("CLUSTER").arg("MYID");
                                pipe.add_command(scan(cursor));
                                let mut replies = c
                                    .route_pipeline(pipe, 0, 2, at)
                                    .await
                                    .map_err(redis_error)?
                                    .into_iter();
                                let (Some(me), Some(page)) = (replies.next(), replies.next())
                                else {
                                    return Err(StoreError::Internal(
                                        "a short reply to CLUSTER MYID and SCAN".into(),
                                    ));
                                };
                                if parse::<String>(me)? != *id {
                                    return Err(StoreError::Unavailable(format!(
                                        "Redis: the scan of the master of slot {slot} \
                                         reached another node"
                                    )));
                                }
                                Ok(page)
                            }
                            (c, _) => scan(cursor).query_async(c).await.map_err(redis_error),
                        }
                    })
                    .await?;
                let (next, batch): (u64, Vec<String>) = parse(reply)?;
                found.extend(batch);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(found)
    }
}

/// The seed URLs of a cluster: those of a `redis+cluster://` (or `rediss+cluster://`) URL
/// with its hosts separated by commas, or of a comma-separated list when `cluster` says so;
/// `None` for a single server.
fn cluster_seeds(url: &str, cluster: bool) -> Result<Option<Vec<String>>, String> {
    let url = url.trim();
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "invalid Redis URL: no scheme".to_owned())?;
    let scheme = scheme.to_ascii_lowercase();
    let plain = match scheme.as_str() {
        "redis+cluster" => "redis",
        "rediss+cluster" => "rediss",
        _ if cluster => {
            return Ok(Some(url.split(',').map(|s| s.trim().to_owned()).collect()));
        }
        _ => return Ok(None),
    };
    // user:password@host1:port,host2:port/ : the credentials apply to every node.
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !matches!(path, "" | "0") {
        return Err("a Redis Cluster has only database 0".into());
    }
    let (credentials, hosts) = match authority.rsplit_once('@') {
        Some((c, h)) => (format!("{c}@"), h),
        None => (String::new(), authority),
    };
    let seeds: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| format!("{plain}://{credentials}{h}/"))
        .collect();
    if seeds.is_empty() {
        return Err("a redis+cluster:// URL names no node".into());
    }
    Ok(Some(seeds))
}

/// Where connections go: one server, or a Redis Cluster reached through seed nodes.
#[derive(Clone)]
enum Connector {
    Single(Client),
    Cluster {
        seeds: Vec<redis::ConnectionInfo>,
        root_cert: Option<Vec<u8>>,
    },
}

impl Connector {
    /// A new connection that gives up connecting after `connect` and waiting for a reply
    /// after `response`.
    async fn connect(&self, connect: Duration, response: Duration) -> RedisResult<Connection> {
        match self {
            Self::Single(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connect))
                    .set_response_timeout(Some(response));
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map(Connection::Single)
            }
            Self::Cluster { seeds, root_cert } => {
                let mut builder = ClusterClientBuilder::new(seeds.clone())
                    .connection_timeout(connect)
                    .response_timeout(response);
                if let Some(pem) = root_cert {
                    builder = builder.certs(TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem.clone()),
                    });
                }
                builder
                    .build()?
                    .get_async_connection()
                    .await
                    .map(Connection::Cluster)
            }
        }
    }
}

/// A multiplexed connection to one server, or a cluster connection that routes each command
/// to its slot's node.
#[derive(Clone)]
enum Connection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Connection {
    /// PING of one node: a cluster sends a plain PING to every master and fails it when one
    /// is unreachable, which would make every call and the health check fail during a
    /// failover, not only those of the failed master's slots.
    async fn ping_one(&mut self) -> RedisResult<()> {
        match self {
            Self::Single(c) => redis::cmd("PING").query_async(c).await,
            Self::Cluster(c) => c
                .route_command(
                    redis::cmd("PING"),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary),
                )
                .await
                .map(|_| ()),
        }
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Makes bb8 open connections with our timeouts (bb8-redis's manager keeps the redis crate's
/// 500 ms response timeout, shorter than a configured command timeout, and knows no cluster).
struct Manager {
    connector: Connector,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl ManageConnection for Manager {
    type Connection = Connection;
    type Error = RedisError;

    async fn connect(&self) -> Result<Self::Connection, Self::Error> {
        self.connector
            .connect(self.connect_timeout, self.response_timeout)
            .await
    }

    /// A single server's connection answers a PING; a cluster connection reconnects to its
    /// nodes by itself, so it is always kept.
    async fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        match conn {
            Connection::Single(c) => redis::cmd("PING").query_async(c).await,
            Connection::Cluster(_) => Ok(()),
        }
    }

    fn has_broken(&self, _: &mut Self::Connection) -> bool {
        false
    }
}

/// Keeps the pool's last connection error, so `Unavailable` can say why.
#[derive(Debug, Clone)]
struct LastError(Arc<Mutex<Option<String>>>);

impl ErrorSink<RedisError> for LastError {
    fn sink(&self, error: RedisError) {
        tracing::debug!(error = %error, "Redis connection failed");
        if let Ok(mut last) = self.0.lock() {
            *last = Some(error.to_string());
        }
    }

    fn boxed_clone(&self) -> Box<dyn ErrorSink<RedisError>> {
        Box::new(self.clone())
    }
}

/// rustls picks its crypto provider from its crate features; when a build enables more than
/// one it refuses to guess, so ring (already in the build for SMTP) is installed once.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err means another thread installed one first: that one serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Connection, I/O and timeout failures (and a server that is loading or failing over) are
/// `Unavailable`; anything else (a script error, a wrong type) is `Internal`.
fn redis_error(e: RedisError) -> StoreError {
    let unavailable = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                )
        );
    if unavailable {
        StoreError::Unavailable(format!("Redis: {e}"))
    } else {
        StoreError::Internal(format!("Redis: {e}"))
    }
}

/// The array a script returns: a status number first, then its values.
struct Reply(Vec<Value>);

impl From<Value> for Reply {
    fn from(value: Value) -> Self {
        match value {
            Value::Array(items) => Self(items),
            other => Self(vec![other]),
        }
    }
}

impl Reply {
    fn bad(&self, i: usize) -> StoreError {
        // Values may be payloads: only the shape is reported.
        StoreError::Internal(format!(
            "unexpected Redis script reply: item {i} of {}",
            self.0.len()
        ))
    }

    fn status(&self) -> StoreResult<i64> {
        self.int(0)
    }

    fn int(&self, i: usize) -> StoreResult<i64> {
        match self.0.get(i) {
            Some(Value::Int(n)) => Ok(*n),
            Some(Value::BulkString(b)) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| self.bad(i)),
            _ => Err(self.bad(i)),
        }
    }

    fn bytes(&self, i: usize) -> StoreResult<Vec<u8>> {
        match self.0.get(i) {
            Some(Value::BulkString(b)) => Ok(b.clone()),
            _ => Err(self.bad(i)),
        }
    }

    fn text(&self, i: usize) -> StoreResult<String> {
        String::from_utf8(self.bytes(i)?).map_err(|_| self.bad(i))
    }
}

/// Lower-case hex, for hashes used as field names (readable in redis-cli).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[(b >> 4) as usize], DIGITS[(b & 15) as usize]])
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
    }

    #[tokio::test]
    async fn urls_are_checked_without_connecting() {
        let lazy = |url: &str| RedisStore::connect_lazy(url, RedisSettings::default());
        assert!(lazy("redis://127.0.0.1:1/").is_ok());
        assert!(lazy("rediss://redis.example.com:6380/0").is_ok());
        assert!(lazy("http://example.com").is_err());
        let braces = RedisSettings {
            key_prefix: "{x}".into(),
            ..RedisSettings::default()
        };
        assert!(RedisStore::connect_lazy("redis://127.0.0.1:1/", braces).is_err());
        assert!(lazy("redis+cluster://127.0.0.1:1,127.0.0.1:2").is_ok());
        assert!(lazy("redis+cluster:///").is_err());
    }

    #[test]
    fn cluster_urls_name_their_seed_nodes() {
        assert_eq!(cluster_seeds("redis://h:1/", false), Ok(None));
        assert_eq!(
            cluster_seeds("redis+cluster://u:p@a:1,b:2/", false),
            Ok(Some(vec![
                "redis://u:p@a:1/".into(),
                "redis://u:p@b:2/".into()
            ]))
        );
        assert_eq!(
            cluster_seeds("rediss+cluster://a:1", false),
            Ok(Some(vec!["rediss://a:1/".into()]))
        );
        assert_eq!(
            cluster_seeds("redis://a:1/, redis://b:2/", true),
            Ok(Some(vec!["redis://a:1/".into(), "redis://b:2/".into()]))
        );
        assert!(cluster_seeds("redis+cluster://a:1/3", false).is_err());
    }
}
