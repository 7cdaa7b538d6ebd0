//! Offline checks of access tokens for the chat's own services (socket servers, the message
//! service), with the `verifier` feature. [`AccessTokenVerifier`] checks a token locally: EdDSA
//! only, the signature against the keys of `AuthService.GetJwks`, issuer, audience and expiry
//! without leeway, and that its session has not ended, which it learns by following
//! `InternalAuthService.WatchEvents`.
//!
//! Keys are fetched on first use and again when a token names a key id not yet known, at most
//! once per [`Builder::jwks_refresh_interval`], so made-up key ids cannot make it call the
//! service more often; a fetch replaces the whole set, so a key dropped from the JWKS stays
//! trusted only until the next one. Ended sessions are remembered for
//! [`Builder::revocation_ttl`], which must be at least the access-token lifetime
//! (ACCESS_TOKEN_EXPIRY): after that every token of the session has expired anyway.
//!
//! What it cannot know: sessions ended before the follower first connected, and sessions ended
//! while it was disconnected when it cannot resume (no event seen yet, or the service no longer
//! holds the events after the last one seen; both logged as warnings). A token of such a
//! session is accepted until it expires, as any offline check of a token would.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, PoisonError, RwLock},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;
use tokio::sync::{Mutex, broadcast, watch};
use tonic::{
    Code, Status,
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};

use crate::v1::{
    Event, EventType, GetJwksRequest, Jwk, WatchEventsRequest, WatchEventsResponse,
    auth_service_client::AuthServiceClient,
    internal_auth_service_client::InternalAuthServiceClient,
};

/// Longest token looked at, as the service itself: anything longer is refused unparsed.
const MAX_TOKEN_LEN: usize = 4096;
/// How long one GetJwks may take before the keys count as unavailable.
const JWKS_TIMEOUT: Duration = Duration::from_secs(5);
/// A stream that stayed up this long resets the reconnect delay even without an event.
const STABLE_STREAM: Duration = Duration::from_secs(10);

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The user (`sub`).
    pub user_id: String,
    /// The session (`sid`): what revocations and Heartbeat name.
    pub session_id: String,
    /// Expiry (`exp`), Unix seconds.
    pub expires_at: i64,
    /// Issue time (`iat`), Unix seconds, when present.
    pub issued_at: Option<i64>,
    /// Token id (`jti`), when present.
    pub token_id: Option<String>,
    /// Id of the key that signed it (`kid`).
    pub key_id: String,
}

/// Why a token was refused. Everything but [`VerifyError::KeysUnavailable`] is the token's
/// fault; that one says the keys could not be fetched, so the token could not be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a JWT: wrong shape, bad base64 or JSON, a claim of the wrong type, too long.
    Malformed,
    /// `alg` is not EdDSA (`none`, HS*, RS*, ES*, anything else), refused before any key is used.
    UnsupportedAlgorithm,
    /// No `kid`, or one that is not in the JWKS even after a refresh.
    UnknownKey,
    /// The JWKS could not be fetched (the service unreachable or answering an error).
    KeysUnavailable(String),
    /// The signature does not match the key named by `kid`.
    BadSignature,
    /// `exp` has passed (no leeway).
    Expired,
    /// `nbf` is still ahead.
    NotYetValid,
    /// `iss` is not the expected issuer.
    WrongIssuer,
    /// `aud` does not name the expected audience.
    WrongAudience,
    /// A required claim (`exp`, `iss`, `aud`, `sub`, `sid`) is absent or empty.
    MissingClaim(&'static str),
    /// The session has ended (a session.revoked event named it).
    Revoked,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("malformed token"),
            Self::UnsupportedAlgorithm => f.write_str("algorithm other than EdDSA"),
            Self::UnknownKey => f.write_str("unknown signing key"),
            Self::KeysUnavailable(why) => write!(f, "signing keys unavailable: {why}"),
            Self::BadSignature => f.write_str("bad signature"),
            Self::Expired => f.write_str("token expired"),
            Self::NotYetValid => f.write_str("token not valid yet"),
            Self::WrongIssuer => f.write_str("wrong issuer"),
            Self::WrongAudience => f.write_str("wrong audience"),
            Self::MissingClaim(claim) => write!(f, "claim {claim} missing"),
            Self::Revoked => f.write_str("session revoked"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Why [`Builder::build`] refused its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// No [`Builder::issuer`], or an empty one.
    MissingIssuer,
    /// No [`Builder::audience`], or an empty one.
    MissingAudience,
    /// No [`Builder::service_token`], or an empty one: without it WatchEvents answers
    /// UNAUTHENTICATED and no revocation would ever be seen.
    MissingServiceToken,
    /// The service token cannot be sent as a header value (only visible ASCII).
    InvalidServiceToken,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingIssuer => "the expected issuer is not set",
            Self::MissingAudience => "the expected audience is not set",
            Self::MissingServiceToken => "the service token is not set",
            Self::InvalidServiceToken => "the service token is not a valid header value",
        })
    }
}

impl std::error::Error for BuildError {}

/// Settings of an [`AccessTokenVerifier`]; from [`AccessTokenVerifier::builder`].
pub struct Builder {
    upstream: UpstreamSource,
    issuer: Option<String>,
    audience: Option<String>,
    service_token: Option<String>,
    jwks_refresh_interval: Duration,
    revocation_ttl: Duration,
    forward_types: Vec<EventType>,
    backoff_initial: Duration,
    backoff_max: Duration,
    event_buffer: usize,
}

enum UpstreamSource {
    Channel(Channel),
    #[cfg(test)]
    Custom(Arc<dyn Upstream>),
}

impl Builder {
    fn new(upstream: UpstreamSource) -> Self {
        Self {
            upstream,
            issuer: None,
            audience: None,
            service_token: None,
            jwks_refresh_interval: Duration::from_secs(10),
            revocation_ttl: Duration::from_secs(16 * 60),
            forward_types: Vec::new(),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            event_buffer: 1024,
        }
    }

    /// The `iss` tokens must carry (the service's JWT_ISSUER). Required.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The `aud` tokens must carry (the service's JWT_AUDIENCE). Required.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The service credential WatchEvents needs (one of the service's SERVICE_TOKENS), sent as
    /// `authorization: Bearer <token>`. Required.
    pub fn service_token(mut self, token: impl Into<String>) -> Self {
        self.service_token = Some(token.into());
        self
    }

    /// Least time between two JWKS fetches caused by unknown key ids. Default 10 s. Keep it
    /// below the service's JWKS_PREPUBLISH (1 h by default): a rotated key is then in the last
    /// fetch, or a fetch is allowed, by the time a token names it.
    pub fn jwks_refresh_interval(mut self, interval: Duration) -> Self {
        self.jwks_refresh_interval = interval;
        self
    }

    /// How long an ended session is remembered; at least the access-token lifetime.
    /// Default 16 min (the default ACCESS_TOKEN_EXPIRY of 15 min, plus a minute).
    pub fn revocation_ttl(mut self, ttl: Duration) -> Self {
        self.revocation_ttl = ttl;
        self
    }

    /// Event types to watch and pass to [`AccessTokenVerifier::subscribe`] besides
    /// session.revoked, which is always watched. Default none.
    pub fn forward_event_types(mut self, types: impl IntoIterator<Item = EventType>) -> Self {
        self.forward_types.extend(types);
        self
    }

    /// Delay before reconnecting the event stream, doubling from `initial` (at least 1 ms) up
    /// to `max`. Default 500 ms to 30 s.
    pub fn reconnect_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial.max(Duration::from_millis(1));
        self.backoff_max = max.max(self.backoff_initial);
        self
    }

    /// Events a slow subscriber may fall behind before it misses some. Default 1024.
    pub fn event_buffer(mut self, events: usize) -> Self {
        self.event_buffer = events.max(1);
        self
    }

    /// Checks the settings. Nothing is fetched and nothing runs yet: keys come on the first
    /// [`AccessTokenVerifier::verify`] (or [`AccessTokenVerifier::refresh_keys`]), events once
    /// [`AccessTokenVerifier::spawn_follower`] is called.
    pub fn build(self) -> Result<AccessTokenVerifier, BuildError> {
        let given = |value: Option<String>| value.filter(|v| !v.is_empty());
        let issuer = given(self.issuer).ok_or(BuildError::MissingIssuer)?;
        let audience = given(self.audience).ok_or(BuildError::MissingAudience)?;
        let token = given(self.service_token).ok_or(BuildError::MissingServiceToken)?;
        let authorization: MetadataValue<Ascii> = format!("Bearer {token}")
            .parse()
            .map_err(|_| BuildError::InvalidServiceToken)?;
        let upstream: Arc<dyn Upstream> = match self.upstream {
            UpstreamSource::Channel(channel) => Arc::new(GrpcUpstream {
                auth: AuthServiceClient::new(channel.clone()),
                internal: InternalAuthServiceClient::new(channel),
                authorization,
            }),
            #[cfg(test)]
            UpstreamSource::Custom(upstream) => upstream,
        };

        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;

        let mut types = vec![EventType::SessionRevoked as i32];
        for t in self.forward_types {
            if t != EventType::Unspecified && !types.contains(&(t as i32)) {
                types.push(t as i32);
            }
        }

        Ok(AccessTokenVerifier {
            inner: Arc::new(Inner {
                upstream,
                validation,
                keys: RwLock::new(HashMap::new()),
                refresh: Mutex::new(RefreshState::default()),
                refresh_interval: self.jwks_refresh_interval,
                revoked: RevokedSessions::new(self.revocation_ttl),
                events: broadcast::channel(self.event_buffer).0,
                following: watch::Sender::new(false),
                types,
                backoff_initial: self.backoff_initial,
                backoff_max: self.backoff_max,
            }),
        })
    }
}

/// Verifies access tokens offline and follows session revocations. Cheap to clone; clones
/// share keys, revocations and subscribers.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use baatcheet_auth_api::AccessTokenVerifier;
///
/// let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051").connect_lazy();
/// let verifier = AccessTokenVerifier::builder(channel)
///     .issuer("baatcheet-auth")
///     .audience("baatcheet")
///     .service_token(std::env::var("SERVICE_TOKEN")?)
///     .build()?;
/// let _follower = verifier.spawn_follower();
/// let token = verifier.verify("eyJ...").await?;
/// println!("user {} in session {}", token.user_id, token.session_id);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AccessTokenVerifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for AccessTokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokenVerifier")
            .field("keys", &self.inner.key_count())
            .field("revoked_sessions", &self.inner.revoked.len())
            .field("following", &self.is_following())
            .finish_non_exhaustive()
    }
}

impl AccessTokenVerifier {
    /// Starts the settings; `channel` leads to the auth service (AuthService and
    /// InternalAuthService on the same port).
    pub fn builder(channel: Channel) -> Builder {
        Builder::new(UpstreamSource::Channel(channel))
    }

    /// Verifies `token`. Synchronous in effect when its key is cached; it waits only when the
    /// key id is unknown and a JWKS fetch is allowed (see [`Builder::jwks_refresh_interval`]).
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        let header = parse_header(token)?;
        if let Some(key) = self.inner.key(&header.kid) {
            return self.inner.check(token, header.kid, &key);
        }
        self.inner.refresh_if_due().await?;
        match self.inner.key(&header.kid) {
            Some(key) => self.inner.check(token, header.kid, &key),
            None => Err(VerifyError::UnknownKey),
        }
    }

    /// Verifies `token` with the keys already cached, never fetching:
    /// [`VerifyError::UnknownKey`] when its key is not among them.
    pub fn verify_cached(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        let header = parse_header(token)?;
        match self.inner.key(&header.kid) {
            Some(key) => self.inner.check(token, header.kid, &key),
            None => Err(VerifyError::UnknownKey),
        }
    }

    /// Fetches the JWKS now, whatever the refresh interval, and returns how many keys it holds.
    /// At startup it makes the first [`verify`](Self::verify) fast and shows a wrong address early.
    pub async fn refresh_keys(&self) -> Result<usize, VerifyError> {
        let mut state = self.inner.refresh.lock().await;
        self.inner.fetch_keys(&mut state).await
    }

    /// Whether `session_id` is known to have ended (remembered for the revocation ttl).
    pub fn is_revoked(&self, session_id: &str) -> bool {
        self.inner.revoked.contains(session_id)
    }

    /// Follows WatchEvents in a task of the current Tokio runtime (it panics outside one) until
    /// the returned handle is aborted. Call it once. On any error or end of stream it
    /// reconnects with backoff, resuming after the last event seen; when the service no longer
    /// holds those events (FAILED_PRECONDITION, EVENTS_EXPIRED) it logs a warning and follows
    /// from now.
    pub fn spawn_follower(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(follow(self.inner.clone()))
    }

    /// Whether the event stream is connected now.
    pub fn is_following(&self) -> bool {
        *self.inner.following.borrow()
    }

    /// Changes of [`is_following`](Self::is_following), e.g. to wait with
    /// `wait_for(|live| *live)` before accepting connections.
    pub fn following(&self) -> watch::Receiver<bool> {
        self.inner.following.subscribe()
    }

    /// Every event the follower receives from now on: session.revoked, and the types of
    /// [`Builder::forward_event_types`]. A receiver that falls more than
    /// [`Builder::event_buffer`] behind gets `Lagged` and misses events; it can catch up on
    /// revocations with [`is_revoked`](Self::is_revoked).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    #[cfg(test)]
    fn with_upstream(upstream: Arc<dyn Upstream>) -> Builder {
        Builder::new(UpstreamSource::Custom(upstream))
    }
}

struct Inner {
    upstream: Arc<dyn Upstream>,
    validation: Validation,
    keys: RwLock<HashMap<String, Arc<DecodingKey>>>,
    /// Held while fetching, so concurrent misses wait for one fetch instead of each making one.
    refresh: Mutex<RefreshState>,
    refresh_interval: Duration,
    revoked: RevokedSessions,
    events: broadcast::Sender<Event>,
    following: watch::Sender<bool>,
    /// WatchEvents filter: session.revoked first, then the forwarded types.
    types: Vec<i32>,
    backoff_initial: Duration,
    backoff_max: Duration,
}

#[derive(Default)]
struct RefreshState {
    last_attempt: Option<Instant>,
    /// Why the last fetch failed, while it is the latest.
    last_error: Option<String>,
}

impl Inner {
    fn key(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(kid)
            .cloned()
    }

    fn key_count(&self) -> usize {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Signature, claims, then the session: refused sessions are looked up only for tokens the
    /// service really signed.
    fn check(
        &self,
        token: &str,
        kid: String,
        key: &DecodingKey,
    ) -> Result<VerifiedToken, VerifyError> {
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|e| jwt_error(e.kind()))?
            .claims;
        let user_id = claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or(VerifyError::MissingClaim("sub"))?;
        let session_id = claims
            .sid
            .filter(|s| !s.is_empty())
            .ok_or(VerifyError::MissingClaim("sid"))?;
        let expires_at = claims.exp.ok_or(VerifyError::MissingClaim("exp"))?;
        if self.revoked.contains(&session_id) {
            return Err(VerifyError::Revoked);
        }
        Ok(VerifiedToken {
            user_id,
            session_id,
            expires_at,
            issued_at: claims.iat,
            token_id: claims.jti,
            key_id: kid,
        })
    }

    /// Fetches unless the last attempt is younger than the refresh interval; then reports the
    /// last failure, if it was one.
    async fn refresh_if_due(&self) -> Result<(), VerifyError> {
        let mut state = self.refresh.lock().await;
        let recent = state
            .last_attempt
            .is_some_and(|at| at.elapsed() < self.refresh_interval);
        if recent {
            return match &state.last_error {
                Some(why) => Err(VerifyError::KeysUnavailable(why.clone())),
                None => Ok(()),
            };
        }
        self.fetch_keys(&mut state).await.map(|_| ())
    }

    /// Replaces the cached keys with the JWKS's Ed25519 keys. A JWKS with none leaves the
    /// cache as it was and counts as a failure.
    async fn fetch_keys(&self, state: &mut RefreshState) -> Result<usize, VerifyError> {
        state.last_attempt = Some(Instant::now());
        let fetched = match tokio::time::timeout(JWKS_TIMEOUT, self.upstream.get_jwks()).await {
            Ok(Ok(jwks)) => usable_keys(&jwks),
            Ok(Err(status)) => Err(format!(
                "GetJwks: {:?}: {}",
                status.code(),
                status.message()
            )),
            Err(_) => Err(format!("GetJwks: no answer in {JWKS_TIMEOUT:?}")),
        };
        match fetched {
            Ok(keys) => {
                let count = keys.len();
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
                state.last_error = None;
                tracing::debug!(keys = count, "JWKS fetched");
                Ok(count)
            }
            Err(why) => {
                tracing::warn!(error = %why, "cannot fetch the JWKS");
                state.last_error = Some(why.clone());
                Err(VerifyError::KeysUnavailable(why))
            }
        }
    }

    /// Records what an event says and passes it on.
    fn observe(&self, event: Event, now: Instant) {
        if event.r#type() == EventType::SessionRevoked && !event.session_id.is_empty() {
            self.revoked.insert(event.session_id.clone(), now);
        }
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }
}

/// Ed25519 keys of a JWKS by key id; keys of any other kind or use are skipped.
fn usable_keys(jwks: &[Jwk]) -> Result<HashMap<String, Arc<DecodingKey>>, String> {
    let mut keys = HashMap::new();
    for jwk in jwks {
        let usable = jwk.kty == "OKP"
            && jwk.crv == "Ed25519"
            && matches!(jwk.alg.as_str(), "" | "EdDSA")
            && matches!(jwk.r#use.as_str(), "" | "sig")
            && !jwk.kid.is_empty()
            && URL_SAFE_NO_PAD
                .decode(&jwk.x)
                .is_ok_and(|public| public.len() == 32);
        if !usable {
            tracing::debug!(kid = %jwk.kid, kty = %jwk.kty, "JWKS key skipped");
            continue;
        }
        let key = DecodingKey::from_ed_components(&jwk.x).map_err(|e| e.to_string())?;
        keys.insert(jwk.kid.clone(), Arc::new(key));
    }
    if keys.is_empty() {
        return Err("the JWKS holds no Ed25519 signing key".to_owned());
    }
    Ok(keys)
}

/// The header fields looked at before any key is: `alg` must be EdDSA, `kid` picks the key.
struct TokenHeader {
    kid: String,
}

fn parse_header(token: &str) -> Result<TokenHeader, VerifyError> {
    #[derive(Deserialize)]
    struct Raw {
        alg: String,
        kid: Option<String>,
    }
    if token.len() > MAX_TOKEN_LEN || token.split('.').count() != 3 {
        return Err(VerifyError::Malformed);
    }
    let encoded = token.split('.').next().unwrap_or_default();
    let json = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| VerifyError::Malformed)?;
    let raw: Raw = serde_json::from_slice(&json).map_err(|_| VerifyError::Malformed)?;
    if raw.alg != "EdDSA" {
        return Err(VerifyError::UnsupportedAlgorithm);
    }
    match raw.kid {
        Some(kid) if !kid.is_empty() => Ok(TokenHeader { kid }),
        _ => Err(VerifyError::UnknownKey),
    }
}

/// Claims of an access token. All optional, so that an absent one is reported by name
/// rather than as malformed JSON.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    sid: Option<String>,
    exp: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
}

fn jwt_error(kind: &ErrorKind) -> VerifyError {
    match kind {
        ErrorKind::InvalidSignature | ErrorKind::InvalidEddsaKey | ErrorKind::InvalidKeyFormat => {
            VerifyError::BadSignature
        }
        ErrorKind::ExpiredSignature => VerifyError::Expired,
        ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
        ErrorKind::InvalidIssuer => VerifyError::WrongIssuer,
        ErrorKind::InvalidAudience => VerifyError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "exp" => VerifyError::MissingClaim("exp"),
            "iss" => VerifyError::MissingClaim("iss"),
            "aud" => VerifyError::MissingClaim("aud"),
            "sub" => VerifyError::MissingClaim("sub"),
            _ => VerifyError::Malformed,
        },
        ErrorKind::InvalidAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => VerifyError::UnsupportedAlgorithm,
        _ => VerifyError::Malformed,
    }
}

/// Ended sessions with the time they were learnt, kept for `ttl`. Pruned as new ones arrive,
/// at most every quarter ttl, so it holds at most the revocations of 1.25 ttl. An entry past
/// its ttl but not pruned yet still counts: that only refuses tokens that expired anyway.
struct RevokedSessions {
    ttl: Duration,
    state: RwLock<RevokedState>,
}

struct RevokedState {
    learnt: HashMap<String, Instant>,
    /// Learnt times in order, oldest first, so pruning stops at the first one to keep.
    order: VecDeque<(Instant, String)>,
    last_prune: Option<Instant>,
}

impl RevokedSessions {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            state: RwLock::new(RevokedState {
                learnt: HashMap::new(),
                order: VecDeque::new(),
                last_prune: None,
            }),
        }
    }

    fn contains(&self, session_id: &str) -> bool {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .learnt
            .contains_key(session_id)
    }

    fn len(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .learnt
            .len()
    }

    fn insert(&self, session_id: String, now: Instant) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let due = state
            .last_prune
            .is_none_or(|at| now.saturating_duration_since(at) >= self.ttl / 4);
        if due {
            self.prune_locked(&mut state, now);
        }
        state.learnt.insert(session_id.clone(), now);
        state.order.push_back((now, session_id));
    }

    fn prune(&self, now: Instant) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        self.prune_locked(&mut state, now);
    }

    fn prune_locked(&self, state: &mut RevokedState, now: Instant) {
        state.last_prune = Some(now);
        while let Some((at, _)) = state.order.front() {
            if now.saturating_duration_since(*at) < self.ttl {
                break;
            }
            let Some((at, session_id)) = state.order.pop_front() else {
                break;
            };
            // A session learnt again later keeps its later time.
            if state.learnt.get(&session_id) == Some(&at) {
                state.learnt.remove(&session_id);
            }
        }
    }
}

/// The follower: one WatchEvents stream at a time, for as long as the task runs.
async fn follow(inner: Arc<Inner>) {
    let mut since = String::new();
    let mut backoff = inner.backoff_initial;
    loop {
        let request = WatchEventsRequest {
            since_event_id: since.clone(),
            types: inner.types.clone(),
        };
        let failure = match inner.upstream.watch_events(request).await {
            Ok(mut stream) => {
                inner.following.send_replace(true);
                tracing::info!(since_event_id = %since, "following session events");
                let opened = Instant::now();
                let mut received = false;
                let end = loop {
                    match stream.next().await {
                        Ok(Some(Step::Event(event))) => {
                            received = true;
                            since.clone_from(&event.id);
                            inner.observe(event, Instant::now());
                        }
                        Ok(Some(Step::Position(position))) => {
                            received = true;
                            since = position;
                        }
                        Ok(None) => break None,
                        Err(status) => break Some(status),
                    }
                };
                inner.following.send_replace(false);
                if since.is_empty() {
                    tracing::warn!(
                        "no event seen to resume after: sessions ended while disconnected \
                         will be unknown"
                    );
                }
                if received || opened.elapsed() >= STABLE_STREAM {
                    backoff = inner.backoff_initial;
                }
                end
            }
            Err(status) => Some(status),
        };
        inner.revoked.prune(Instant::now());
        match failure {
            // Expired, or a position this service does not know (its log was replaced: the
            // field violation names since_event_id).
            Some(status)
                if status.code() == Code::FailedPrecondition
                    || (status.code() == Code::InvalidArgument
                        && status.details().windows(14).any(|w| w == b"since_event_id")) =>
            {
                tracing::warn!(
                    since_event_id = %since,
                    error = status.message(),
                    "the events after the last one seen are no longer kept: \
                     sessions ended meanwhile are unknown, following from now"
                );
                since.clear();
            }
            Some(status) => tracing::warn!(
                code = ?status.code(),
                error = status.message(),
                retry_in = ?backoff,
                "session event stream failed"
            ),
            None => tracing::info!(retry_in = ?backoff, "session event stream ended"),
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2).min(inner.backoff_max);
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where keys and events come from: the auth service over gRPC, or a script in tests.
trait Upstream: Send + Sync + 'static {
    fn get_jwks(&self) -> BoxFuture<'_, Result<Vec<Jwk>, Status>>;
    fn watch_events(
        &self,
        request: WatchEventsRequest,
    ) -> BoxFuture<'_, Result<Box<dyn EventStream>, Status>>;
}

/// What one message of the stream brings: an event, or a checkpoint (the service skipped
/// events of types not asked for) to resume from.
enum Step {
    Event(Event),
    Position(String),
}

/// One open WatchEvents stream: `Ok(None)` when it ended.
trait EventStream: Send {
    fn next(&mut self) -> BoxFuture<'_, Result<Option<Step>, Status>>;
}

struct GrpcUpstream {
    auth: AuthServiceClient<Channel>,
    internal: InternalAuthServiceClient<Channel>,
    authorization: MetadataValue<Ascii>,
}

impl Upstream for GrpcUpstream {
    fn get_jwks(&self) -> BoxFuture<'_, Result<Vec<Jwk>, Status>> {
        let mut client = self.auth.clone();
        Box::pin(async move { Ok(client.get_jwks(GetJwksRequest {}).await?.into_inner().keys) })
    }

    fn watch_events(
        &self,
        request: WatchEventsRequest,
    ) -> BoxFuture<'_, Result<Box<dyn EventStream>, Status>> {
        let mut client = self.internal.clone();
        let mut request = tonic::Request::new(request);
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        Box::pin(async move {
            let stream = client.watch_events(request).await?.into_inner();
            Ok(Box::new(stream) as Box<dyn EventStream>)
        })
    }
}

impl EventStream for tonic::Streaming<WatchEventsResponse> {
    fn next(&mut self) -> BoxFuture<'_, Result<Option<Step>, Status>> {
        Box::pin(async move {
            loop {
                match self.message().await? {
                    Some(WatchEventsResponse {
                        event: Some(event), ..
                    }) => return Ok(Some(Step::Event(event))),
                    Some(WatchEventsResponse {
                        event: None,
                        position,
                    }) if !position.is_empty() => return Ok(Some(Step::Position(position))),
                    Some(_) => continue,
                    None => return Ok(None),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Mutex as StdMutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    };

    use aws_lc_rs::{
        rand::SystemRandom,
        signature::{Ed25519KeyPair, KeyPair},
    };
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{Value, json};
    use tokio::sync::mpsc;

    use super::*;

    const ISS: &str = "baatcheet-auth";
    const AUD: &str = "baatcheet";

    /// An Ed25519 key made for the test, with its JWK.
    struct TestKey {
        encoding: EncodingKey,
        public: Vec<u8>,
        jwk: Jwk,
    }

    fn test_key(kid: &str) -> TestKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let public = pair.public_key().as_ref().to_vec();
        let jwk = Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(&public),
            kid: kid.into(),
            alg: "EdDSA".into(),
            r#use: "sig".into(),
        };
        TestKey {
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            public,
            jwk,
        }
    }

    fn now() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64
    }

    fn claims(sid: &str) -> Value {
        let now = now();
        json!({
            "iss": ISS, "aud": AUD, "sub": "user-1", "sid": sid,
            "iat": now, "exp": now + 900, "jti": "jti-1",
        })
    }

    fn sign_as(key: &TestKey, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
    }

    fn sign(key: &TestKey, claims: &Value) -> String {
        sign_as(key, &key.jwk.kid, claims)
    }

    /// A token with any header, signature left empty.
    fn unsigned(header: Value, claims: &Value) -> String {
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    /// What one WatchEvents call answers: a stream fed by the test, or an error.
    type Scripted = Result<mpsc::Receiver<Result<Event, Status>>, Status>;

    /// Scripted keys and event streams in place of the auth service.
    #[derive(Default)]
    struct Fake {
        keys: StdMutex<Vec<Jwk>>,
        jwks_calls: AtomicUsize,
        jwks_down: AtomicBool,
        watches: StdMutex<Vec<WatchEventsRequest>>,
        streams: StdMutex<VecDeque<Scripted>>,
    }

    impl Fake {
        fn with_keys(keys: &[&TestKey]) -> Arc<Self> {
            let fake = Self::default();
            *fake.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
            Arc::new(fake)
        }

        fn calls(&self) -> usize {
            self.jwks_calls.load(Ordering::SeqCst)
        }
    }

    impl Upstream for Fake {
        fn get_jwks(&self) -> BoxFuture<'_, Result<Vec<Jwk>, Status>> {
            self.jwks_calls.fetch_add(1, Ordering::SeqCst);
            let answer = if self.jwks_down.load(Ordering::SeqCst) {
                Err(Status::unavailable("down"))
            } else {
                Ok(self.keys.lock().unwrap().clone())
            };
            Box::pin(async move { answer })
        }

        fn watch_events(
            &self,
            request: WatchEventsRequest,
        ) -> BoxFuture<'_, Result<Box<dyn EventStream>, Status>> {
            self.watches.lock().unwrap().push(request);
            let next = self.streams.lock().unwrap().pop_front();
            Box::pin(async move {
                match next {
                    Some(Ok(events)) => Ok(Box::new(Script(events)) as Box<dyn EventStream>),
                    Some(Err(status)) => Err(status),
                    None => Err(Status::unavailable("no stream scripted")),
                }
            })
        }
    }

    /// A stream that yields what the test sends and ends when the test drops its sender.
    struct Script(mpsc::Receiver<Result<Event, Status>>);

    impl EventStream for Script {
        fn next(&mut self) -> BoxFuture<'_, Result<Option<Step>, Status>> {
            Box::pin(async move { self.0.recv().await.transpose().map(|e| e.map(Step::Event)) })
        }
    }

    fn builder(fake: &Arc<Fake>) -> Builder {
        AccessTokenVerifier::with_upstream(fake.clone())
            .issuer(ISS)
            .audience(AUD)
            .service_token("service-token")
    }

    async fn verifier_with(key: &TestKey) -> AccessTokenVerifier {
        let verifier = builder(&Fake::with_keys(&[key])).build().unwrap();
        assert_eq!(verifier.refresh_keys().await, Ok(1));
        verifier
    }

    fn event(id: &str, kind: EventType, session_id: &str) -> Event {
        Event {
            id: id.into(),
            r#type: kind as i32,
            user_id: "user-1".into(),
            session_id: session_id.into(),
            ..Event::default()
        }
    }

    async fn next_event(events: &mut broadcast::Receiver<Event>) -> Event {
        tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("no event within 5 s")
            .unwrap()
    }

    #[tokio::test]
    async fn accepts_a_valid_token() {
        let key = test_key("k1");
        let verifier = verifier_with(&key).await;
        let claims = claims("s1");
        let token = sign(&key, &claims);
        let expected = VerifiedToken {
            user_id: "user-1".into(),
            session_id: "s1".into(),
            expires_at: claims["exp"].as_i64().unwrap(),
            issued_at: claims["iat"].as_i64(),
            token_id: Some("jti-1".into()),
            key_id: "k1".into(),
        };
        assert_eq!(verifier.verify_cached(&token), Ok(expected.clone()));
        assert_eq!(verifier.verify(&token).await, Ok(expected));
    }

    #[tokio::test]
    async fn refuses_a_token_expired_by_one_second() {
        let key = test_key("k1");
        let verifier = verifier_with(&key).await;
        let mut claims = claims("s1");
        claims["exp"] = json!(now() - 1);
        assert_eq!(
            verifier.verify_cached(&sign(&key, &claims)),
            Err(VerifyError::Expired)
        );
    }

    #[tokio::test]
    async fn refuses_a_token_not_valid_yet() {
        let key = test_key("k1");
        let verifier = verifier_with(&key).await;
        let mut claims = claims("s1");
        claims["nbf"] = json!(now() + 60);
        assert_eq!(
            verifier.verify_cached(&sign(&key, &claims)),
            Err(VerifyError::NotYetValid)
        );
    }

    #[tokio::test]
    async fn refuses_wrong_issuer_and_audience() {
        let key = test_key("k1");
        let verifier = verifier_with(&key).await;
        let mut claims = claims("s1");
        claims["iss"] = json!("someone-else");
        assert_eq!(
            verifier.verify_cached(&sign(&key, &claims)),
            Err(VerifyError::WrongIssuer)
        );
        let mut claims = self::claims("s1");
        claims["aud"] = json!("another-app");
        assert_eq!(
            verifier.verify_cached(&sign(&key, &claims)),
            Err(VerifyError::WrongAudience)
        );
        claims["aud"] = json!(["another-app", "a-third"]);
        assert_eq!(
            verifier.verify_cached(&sign(&key, &claims)),
            Err(VerifyError::WrongAudience)
        );
    }

    #[tokio::test]
    async fn refuses_missing_claims() {
        let key = test_key("k1");
        let verifier = verifier_with(&key).await;
        for (claim, error) in [
            ("sub", VerifyError::MissingClaim("sub")),
            ("sid", VerifyError::MissingClaim("sid")),
            ("exp", VerifyError::MissingClaim("exp")),
            ("iss", VerifyError::MissingClaim("iss")),
            ("aud", VerifyError::MissingClaim("aud")),
        ] {
            let mut claims = claims("s1");
            claims.as_object_mut().unwrap().remove(claim);
            assert_eq!(
                verifier.verify_cached(&sign(&key, &claims)),
                Err(error),
                "without {claim}"
            );
        }
        let mut claims = claims("s1");
        claims["sid"] = json!("");
        assert_eq!(
            verifier.verify_cached(&sign(&key, &claims)),
            Err(VerifyError::MissingClaim("sid"))
        );
    }

    #[tokio::test]
    async fn refuses_alg_none() {
        let key = test_key("k1");
        let verifier = verifier_with(&key).await;
        for alg in ["none", "None", "NONE", ""] {
            let token = unsigned(
                json!({"alg": alg, "typ": "JWT", "kid": "k1"}),
                &claims("s1"),
            );
            assert_eq!(
                verifier.verify(&token).await,
                Err(VerifyError::UnsupportedAlgorithm),
                "alg {alg:?}"
            );
        }
    }

    #[tokio::test]
    async fn refuses_hs256_signed_with_the_public_key() {
        let key = test_key("k1");
        let verifier = verifier_with(&key).await;
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        for secret in [key.public.clone(), key.jwk.x.clone().into_bytes()] {
            let token =
                jsonwebtoken::encode(&header, &claims("s1"), &EncodingKey::from_secret(&secret))
                    .unwrap();
            assert_eq!(
                verifier.verify(&token).await,
                Err(VerifyError::UnsupportedAlgorithm)
            );
        }
    }

    #[tokio::test]
    async fn refuses_every_other_algorithm() {
        let key = test_key("k1");
        let verifier = verifier_with(&key).await;
        let signed = sign(&key, &claims("s1"));
        let signature = signed.rsplit('.').next().unwrap();
        for alg in [
            "HS384", "HS512", "RS256", "RS512", "PS256", "ES256", "ES384", "Ed25519", "eddsa",
        ] {
            let token = unsigned(json!({"alg": alg, "kid": "k1"}), &claims("s1")) + signature;
            assert_eq!(
                verifier.verify_cached(&token),
                Err(VerifyError::UnsupportedAlgorithm),
                "alg {alg}"
            );
        }
    }

    #[tokio::test]
    async fn refuses_bad_signatures() {
        let key = test_key("k1");
        let verifier = verifier_with(&key).await;
        // Another key claiming to be k1.
        let impostor = test_key("k1");
        assert_eq!(
            verifier.verify_cached(&sign(&impostor, &claims("s1"))),
            Err(VerifyError::BadSignature)
        );
        // The right signature over other claims.
        let token = sign(&key, &claims("s1"));
        let mut parts: Vec<&str> = token.split('.').collect();
        let mut other = claims("s1");
        other["sub"] = json!("admin");
        let payload = URL_SAFE_NO_PAD.encode(other.to_string());
        parts[1] = &payload;
        assert_eq!(
            verifier.verify_cached(&parts.join(".")),
            Err(VerifyError::BadSignature)
        );
    }

    #[tokio::test]
    async fn refuses_malformed_tokens() {
        let key = test_key("k1");
        let verifier = verifier_with(&key).await;
        let valid = sign(&key, &claims("s1"));
        let too_long = format!("{valid}{}", "A".repeat(MAX_TOKEN_LEN));
        // Rightly signed, but the payload is not JSON claims.
        let header = valid.split('.').next().unwrap();
        let message = format!("{header}.{}", URL_SAFE_NO_PAD.encode("not json"));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key.encoding, Algorithm::EdDSA)
                .unwrap();
        let not_json = format!("{message}.{signature}");
        let mut wrong_type = claims("s1");
        wrong_type["sid"] = json!(42);
        let wrong_type = sign(&key, &wrong_type);
        for token in [
            "",
            "abc",
            "a.b",
            "a.b.c",
            "a.b.c.d",
            "...",
            &format!("{valid}.x"),
            &too_long,
            &unsigned(json!(["EdDSA"]), &claims("s1")),
            &format!("!!!.{}", valid.split_once('.').unwrap().1),
            &not_json,
            &wrong_type,
        ] {
            assert_eq!(
                verifier.verify_cached(token),
                Err(VerifyError::Malformed),
                "{token:.40}"
            );
        }
    }

    #[tokio::test]
    async fn refuses_unknown_and_missing_kids() {
        let key = test_key("k1");
        let verifier = verifier_with(&key).await;
        assert_eq!(
            verifier.verify(&sign_as(&key, "k2", &claims("s1"))).await,
            Err(VerifyError::UnknownKey)
        );
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = None;
        let token = jsonwebtoken::encode(&header, &claims("s1"), &key.encoding).unwrap();
        assert_eq!(verifier.verify(&token).await, Err(VerifyError::UnknownKey));
    }

    #[tokio::test]
    async fn refuses_a_revoked_session_once_learnt() {
        let key = test_key("k1");
        let verifier = verifier_with(&key).await;
        let token = sign(&key, &claims("s1"));
        assert!(verifier.verify_cached(&token).is_ok());
        verifier
            .inner
            .observe(event("e1", EventType::SessionRevoked, "s1"), Instant::now());
        assert_eq!(verifier.verify_cached(&token), Err(VerifyError::Revoked));
        assert!(verifier.is_revoked("s1"));
        // Other sessions and other event types are untouched.
        assert!(verifier.verify_cached(&sign(&key, &claims("s2"))).is_ok());
        verifier
            .inner
            .observe(event("e2", EventType::SessionCreated, "s3"), Instant::now());
        assert!(verifier.verify_cached(&sign(&key, &claims("s3"))).is_ok());
    }

    #[test]
    fn revoked_sessions_are_pruned_after_their_ttl() {
        let ttl = Duration::from_secs(60);
        let revoked = RevokedSessions::new(ttl);
        let t0 = Instant::now();
        revoked.insert("s1".into(), t0);
        revoked.insert("s2".into(), t0 + Duration::from_secs(30));
        revoked.prune(t0 + ttl - Duration::from_millis(1));
        assert!(revoked.contains("s1") && revoked.contains("s2"));
        revoked.prune(t0 + ttl);
        assert!(!revoked.contains("s1"));
        assert!(revoked.contains("s2"));
        revoked.prune(t0 + Duration::from_secs(30) + ttl);
        assert_eq!(revoked.len(), 0);
    }

    #[test]
    fn revoked_sessions_stay_bounded_by_inserting_alone() {
        let ttl = Duration::from_secs(60);
        let revoked = RevokedSessions::new(ttl);
        let t0 = Instant::now();
        // One revocation a second for ten ttls: only the last 1.25 ttl may remain.
        for second in 0..600u64 {
            revoked.insert(format!("s{second}"), t0 + Duration::from_secs(second));
        }
        assert!(revoked.len() <= 75 + 1, "{} kept", revoked.len());
        assert!(revoked.contains("s599") && !revoked.contains("s0"));
    }

    #[test]
    fn a_session_revoked_again_is_kept_from_the_latest_time() {
        let ttl = Duration::from_secs(60);
        let revoked = RevokedSessions::new(ttl);
        let t0 = Instant::now();
        revoked.insert("s1".into(), t0);
        revoked.insert("s1".into(), t0 + Duration::from_secs(50));
        revoked.prune(t0 + ttl);
        assert!(revoked.contains("s1"));
        revoked.prune(t0 + Duration::from_secs(50) + ttl);
        assert!(!revoked.contains("s1"));
    }

    #[tokio::test]
    async fn fetches_keys_on_first_use_only() {
        let key = test_key("k1");
        let fake = Fake::with_keys(&[&key]);
        let verifier = builder(&fake).build().unwrap();
        let token = sign(&key, &claims("s1"));
        // The sync path never fetches.
        assert_eq!(verifier.verify_cached(&token), Err(VerifyError::UnknownKey));
        assert_eq!(fake.calls(), 0);
        assert!(verifier.verify(&token).await.is_ok());
        assert!(verifier.verify(&token).await.is_ok());
        assert!(verifier.verify_cached(&token).is_ok());
        assert_eq!(fake.calls(), 1);
    }

    #[tokio::test]
    async fn unknown_kids_refresh_at_most_once_per_interval() {
        let key = test_key("k1");
        let fake = Fake::with_keys(&[&key]);
        let verifier = builder(&fake)
            .jwks_refresh_interval(Duration::from_secs(1))
            .build()
            .unwrap();
        assert!(verifier.verify(&sign(&key, &claims("s1"))).await.is_ok());
        for i in 0..100 {
            let garbage = sign_as(&key, &format!("garbage-{i}"), &claims("s1"));
            assert_eq!(
                verifier.verify(&garbage).await,
                Err(VerifyError::UnknownKey)
            );
        }
        assert_eq!(fake.calls(), 1);
        // Once the interval has passed, a new key is picked up.
        let rotated = test_key("k2");
        fake.keys.lock().unwrap().push(rotated.jwk.clone());
        let token = sign(&rotated, &claims("s1"));
        assert_eq!(verifier.verify(&token).await, Err(VerifyError::UnknownKey));
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(verifier.verify(&token).await.is_ok());
        assert_eq!(fake.calls(), 2);
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_fetch() {
        let key = test_key("k1");
        let fake = Fake::with_keys(&[&key]);
        let verifier = builder(&fake).build().unwrap();
        let token = sign(&key, &claims("s1"));
        let checks: Vec<_> = (0..20)
            .map(|_| {
                let (verifier, token) = (verifier.clone(), token.clone());
                tokio::spawn(async move { verifier.verify(&token).await })
            })
            .collect();
        for check in checks {
            assert!(check.await.unwrap().is_ok());
        }
        assert_eq!(fake.calls(), 1);
    }

    #[tokio::test]
    async fn an_unreachable_jwks_is_reported_and_not_hammered() {
        let key = test_key("k1");
        let fake = Fake::with_keys(&[&key]);
        fake.jwks_down.store(true, Ordering::SeqCst);
        let verifier = builder(&fake).build().unwrap();
        let token = sign(&key, &claims("s1"));
        for _ in 0..10 {
            assert!(matches!(
                verifier.verify(&token).await,
                Err(VerifyError::KeysUnavailable(_))
            ));
        }
        assert_eq!(fake.calls(), 1);
        // Back up: an explicit refresh ignores the interval.
        fake.jwks_down.store(false, Ordering::SeqCst);
        assert_eq!(verifier.refresh_keys().await, Ok(1));
        assert!(verifier.verify(&token).await.is_ok());
    }

    #[tokio::test]
    async fn only_ed25519_signing_keys_are_used() {
        let good = test_key("good");
        let odd = |change: fn(&mut Jwk)| {
            let mut jwk = test_key("odd").jwk;
            change(&mut jwk);
            jwk
        };
        let fake = Fake::with_keys(&[&good]);
        fake.keys.lock().unwrap().extend([
            odd(|k| k.kty = "RSA".into()),
            odd(|k| k.crv = "X25519".into()),
            odd(|k| k.alg = "RS256".into()),
            odd(|k| k.r#use = "enc".into()),
            odd(|k| k.x = "AAAA".into()),
        ]);
        let verifier = builder(&fake).build().unwrap();
        assert_eq!(verifier.refresh_keys().await, Ok(1));

        fake.keys.lock().unwrap().retain(|k| k.kid == "odd");
        assert!(matches!(
            verifier.refresh_keys().await,
            Err(VerifyError::KeysUnavailable(_))
        ));
        // A JWKS with no usable key leaves the cached keys in place.
        assert!(verifier.verify_cached(&sign(&good, &claims("s1"))).is_ok());
    }

    #[test]
    fn build_requires_issuer_audience_and_a_sendable_service_token() {
        let fake = Fake::with_keys(&[]);
        let base = || AccessTokenVerifier::with_upstream(fake.clone());
        let error = |b: Builder| b.build().unwrap_err();
        assert_eq!(
            error(base().audience(AUD).service_token("t")),
            BuildError::MissingIssuer
        );
        assert_eq!(
            error(base().issuer(ISS).service_token("t")),
            BuildError::MissingAudience
        );
        assert_eq!(
            error(base().issuer(ISS).audience(AUD)),
            BuildError::MissingServiceToken
        );
        assert_eq!(
            error(base().issuer("").audience(AUD).service_token("t")),
            BuildError::MissingIssuer
        );
        assert_eq!(
            error(base().issuer(ISS).audience(AUD).service_token("")),
            BuildError::MissingServiceToken
        );
        assert_eq!(
            error(base().issuer(ISS).audience(AUD).service_token("a\nb")),
            BuildError::InvalidServiceToken
        );
    }

    #[tokio::test]
    async fn follower_resumes_after_the_last_event_and_from_now_when_expired() {
        let key = test_key("k1");
        let fake = Fake::with_keys(&[&key]);
        // First stream: two revocations, then the connection breaks.
        let (first, events) = mpsc::channel(8);
        fake.streams.lock().unwrap().push_back(Ok(events));
        // Then the resume point is gone: FAILED_PRECONDITION (EVENTS_EXPIRED).
        fake.streams
            .lock()
            .unwrap()
            .push_back(Err(Status::failed_precondition("EVENTS_EXPIRED")));
        // Then a stream from now that stays open.
        let (third, events) = mpsc::channel(8);
        fake.streams.lock().unwrap().push_back(Ok(events));

        let verifier = builder(&fake)
            .reconnect_backoff(Duration::from_millis(1), Duration::from_millis(5))
            .build()
            .unwrap();
        verifier.refresh_keys().await.unwrap();
        let mut seen = verifier.subscribe();
        let mut following = verifier.following();
        let follower = verifier.spawn_follower();

        first
            .send(Ok(event("e1", EventType::SessionRevoked, "s1")))
            .await
            .unwrap();
        first
            .send(Ok(event("e2", EventType::SessionRevoked, "s2")))
            .await
            .unwrap();
        assert_eq!(next_event(&mut seen).await.id, "e1");
        assert_eq!(next_event(&mut seen).await.id, "e2");
        assert!(verifier.is_following());
        first
            .send(Err(Status::unavailable("connection reset")))
            .await
            .unwrap();

        let token = sign(&key, &claims("s3"));
        assert!(verifier.verify_cached(&token).is_ok());
        tokio::time::timeout(Duration::from_secs(5), async {
            while fake.watches.lock().unwrap().len() < 3 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("no third WatchEvents call");
        third
            .send(Ok(event("e9", EventType::SessionRevoked, "s3")))
            .await
            .unwrap();
        assert_eq!(next_event(&mut seen).await.id, "e9");
        tokio::time::timeout(Duration::from_secs(5), following.wait_for(|live| *live))
            .await
            .unwrap()
            .unwrap();

        let watches = fake.watches.lock().unwrap().clone();
        let since: Vec<&str> = watches.iter().map(|w| w.since_event_id.as_str()).collect();
        assert_eq!(since, ["", "e2", ""]);
        for watch in &watches {
            assert_eq!(watch.types, [EventType::SessionRevoked as i32]);
        }
        for session in ["s1", "s2", "s3"] {
            assert!(verifier.is_revoked(session), "{session}");
        }
        assert_eq!(verifier.verify_cached(&token), Err(VerifyError::Revoked));

        // The stream ends: no longer following, and it reconnects after e9.
        drop(third);
        tokio::time::timeout(Duration::from_secs(5), following.wait_for(|live| !*live))
            .await
            .unwrap()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            while fake.watches.lock().unwrap().len() < 4 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("no reconnection");
        assert_eq!(fake.watches.lock().unwrap()[3].since_event_id, "e9");
        follower.abort();
    }

    #[tokio::test]
    async fn follower_forwards_the_types_asked_for() {
        let key = test_key("k1");
        let fake = Fake::with_keys(&[&key]);
        let (stream, events) = mpsc::channel(8);
        fake.streams.lock().unwrap().push_back(Ok(events));
        let verifier = builder(&fake)
            .forward_event_types([
                EventType::SessionCreated,
                EventType::SessionRevoked,
                EventType::Unspecified,
                EventType::PresenceChanged,
            ])
            .build()
            .unwrap();
        let mut seen = verifier.subscribe();
        let follower = verifier.spawn_follower();
        stream
            .send(Ok(event("e1", EventType::SessionCreated, "s1")))
            .await
            .unwrap();
        let created = next_event(&mut seen).await;
        assert_eq!(created.r#type(), EventType::SessionCreated);
        assert!(!verifier.is_revoked("s1"));
        assert_eq!(
            fake.watches.lock().unwrap()[0].types,
            [
                EventType::SessionRevoked as i32,
                EventType::SessionCreated as i32,
                EventType::PresenceChanged as i32,
            ]
        );
        follower.abort();
    }
}
