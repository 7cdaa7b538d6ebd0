//! `baatcheet.auth.v1.InternalAuthService`: the user directory and the event stream for the
//! chat's own services. Every call first proves a service credential (`authorization: Bearer
//! <service token>`); without one the answer is UNAUTHENTICATED and nothing else.

use std::{pin::Pin, sync::Arc, time::Duration};

use baatcheet_auth_api::v1::{self as pb, internal_auth_service_server::InternalAuthService};
use futures_util::StreamExt as _;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::{bearer, convert, ok, status::to_status};
use crate::crypto::ServiceTokens;
use crate::flows::{FlowError, SharedCore};

/// How long one read of the event log waits for news before asking again.
const EVENT_POLL: Duration = Duration::from_secs(5);

/// Events buffered per watcher; a watcher that does not read blocks only its own stream.
const WATCH_BUFFER: usize = 64;

/// How long a watcher may leave its buffer full before it is disconnected (it resumes from
/// its last position); shutdown never waits on it.
const SLOW_WATCHER: Duration = Duration::from_secs(30);

/// Sends one message unless the watcher left, is too slow, or the server stops.
async fn deliver(
    tx: &mpsc::Sender<Result<pb::WatchEventsResponse, Status>>,
    stop: &CancellationToken,
    message: pb::WatchEventsResponse,
) -> Result<(), Option<Status>> {
    tokio::select! {
        sent = tokio::time::timeout(SLOW_WATCHER, tx.send(Ok(message))) => match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(None), // the watcher went away
            Err(_) => {
                stop.cancel(); // this stream's token: ends the response at once
                Err(Some(Status::unavailable(
                    "the watcher did not read for 30 s; resume from the last position",
                )))
            }
        },
        () = stop.cancelled() => Err(Some(shutting_down())),
    }
}

fn shutting_down() -> Status {
    Status::unavailable("the server is shutting down; resume on another instance")
}

/// Streams events after `after` (starting with `first`) to one watcher until it leaves, the
/// server stops, or reading fails; `Err` carries the status to end the stream with.
async fn feed(
    core: &SharedCore,
    tx: &mpsc::Sender<Result<pb::WatchEventsResponse, Status>>,
    stop: &CancellationToken,
    types: &[&'static str],
    mut after: String,
    first: Vec<crate::domain::Event>,
) -> Result<(), Status> {
    let mut batch = first;
    loop {
        let mut skipped = false;
        for event in batch.drain(..) {
            after = event.id.clone();
            if !types.is_empty() && !types.contains(&event.kind.type_name()) {
                skipped = true;
                continue;
            }
            skipped = false;
            let message = pb::WatchEventsResponse {
                position: event.id.clone(),
                event: Some(convert::event(event)),
            };
            if let Err(status) = deliver(tx, stop, message).await {
                return status.map_or(Ok(()), Err);
            }
        }
        // Events the filter skipped still move the watcher: a checkpoint to resume from, so
        // a quiet filter never leaves it behind the retention.
        if skipped {
            let checkpoint = pb::WatchEventsResponse {
                event: None,
                position: after.clone(),
            };
            if let Err(status) = deliver(tx, stop, checkpoint).await {
                return status.map_or(Ok(()), Err);
            }
        }
        batch = tokio::select! {
            read = core.next_events(&after, EVENT_POLL) => read.map_err(to_status)?,
            () = tx.closed() => return Ok(()),
            () = stop.cancelled() => return Err(shutting_down()),
        };
    }
}

/// Who may call: the service tokens, checked on every call.
#[derive(Clone)]
pub struct ServiceAuth {
    tokens: Arc<ServiceTokens>,
    /// The services allowed the operator actions (OPERATOR_SERVICES).
    operators: Arc<Vec<String>>,
}

impl ServiceAuth {
    pub fn new(tokens: ServiceTokens) -> Self {
        Self {
            tokens: Arc::new(tokens),
            operators: Arc::default(),
        }
    }

    /// Allows the operator actions to the services named.
    pub fn with_operators(mut self, operators: Vec<String>) -> Self {
        self.operators = Arc::new(operators);
        self
    }

    /// Whether any token is configured (then client metadata is believed only with one).
    pub fn configured(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The calling service's name, from a bearer token in `header`.
    pub fn identify<T>(&self, request: &Request<T>, header: &str) -> Option<&str> {
        let value = request.metadata().get(header)?.to_str().ok()?;
        let token = baatcheet_runtime::bearer::token(value)?;
        self.tokens.identify(token)
    }

    /// The calling service, or UNAUTHENTICATED.
    fn require<T>(&self, request: &Request<T>) -> Result<String, Status> {
        match bearer(request).and_then(|t| self.tokens.identify(t)) {
            Some(name) => {
                tracing::Span::current().record("service", name);
                Ok(name.to_owned())
            }
            None => Err(to_status(FlowError::Unauthenticated)),
        }
    }

    /// An operator's service, or UNAUTHENTICATED / PERMISSION_DENIED (OPERATOR_ONLY).
    fn require_operator<T>(&self, request: &Request<T>) -> Result<String, Status> {
        let service = self.require(request)?;
        if self.operators.contains(&service) {
            Ok(service)
        } else {
            Err(to_status(FlowError::OperatorOnly))
        }
    }
}

/// `baatcheet.auth.v1.InternalAuthService` over the shared flows.
pub struct InternalGrpc {
    core: SharedCore,
    auth: ServiceAuth,
    watchers: Arc<Semaphore>,
    /// Cancelled at shutdown: open event streams end so the server can stop.
    stop: CancellationToken,
}

impl InternalGrpc {
    pub fn new(
        core: SharedCore,
        auth: ServiceAuth,
        max_watchers: u32,
        stop: CancellationToken,
    ) -> Self {
        Self {
            core,
            auth,
            watchers: Arc::new(Semaphore::new(max_watchers as usize)),
            stop,
        }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl InternalAuthService for InternalGrpc {
    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        self.auth.require(&request)?;
        let user = self
            .core
            .get_user(&request.get_ref().user_id)
            .await
            .map_err(to_status)?;
        ok(pb::GetUserResponse {
            user: Some(convert::public_user(user)),
        })
    }

    async fn batch_get_users(
        &self,
        request: Request<pb::BatchGetUsersRequest>,
    ) -> Result<Response<pb::BatchGetUsersResponse>, Status> {
        self.auth.require(&request)?;
        let found = self
            .core
            .batch_get_users(&request.get_ref().user_ids)
            .await
            .map_err(to_status)?;
        ok(pb::BatchGetUsersResponse {
            users: found.users.into_iter().map(convert::public_user).collect(),
            missing_user_ids: found.missing,
        })
    }

    async fn lookup_users(
        &self,
        request: Request<pb::LookupUsersRequest>,
    ) -> Result<Response<pb::LookupUsersResponse>, Status> {
        self.auth.require(&request)?;
        let found = self
            .core
            .lookup_users(&request.get_ref().usernames)
            .await
            .map_err(to_status)?;
        ok(pb::LookupUsersResponse {
            users: found.users.into_iter().map(convert::public_user).collect(),
            missing_usernames: found.missing,
        })
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        self.auth.require(&request)?;
        let r = request.get_ref();
        let presence = self
            .core
            .heartbeat(&r.user_id, &r.session_id, convert::status_from(r.status))
            .await
            .map_err(to_status)?;
        ok(pb::HeartbeatResponse {
            presence: Some(convert::presence(presence)),
            ttl: prost_types::Duration::try_from(self.core.presence_ttl()).ok(),
        })
    }

    async fn get_presence(
        &self,
        request: Request<pb::GetPresenceRequest>,
    ) -> Result<Response<pb::GetPresenceResponse>, Status> {
        self.auth.require(&request)?;
        let presences = self
            .core
            .get_presence(&request.get_ref().user_ids)
            .await
            .map_err(to_status)?;
        ok(pb::GetPresenceResponse {
            presences: presences.into_iter().map(convert::presence).collect(),
        })
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let service = self.auth.require(&request)?;
        let permit = self
            .watchers
            .clone()
            .try_acquire_owned()
            .map_err(|_| to_status(FlowError::TooManyWatchers))?;
        let r = request.into_inner();
        let mut types: Vec<&'static str> = Vec::new();
        for raw in &r.types {
            match convert::event_type_name(*raw) {
                Some(name) => types.push(name),
                // Unspecified is ignored; a value this version does not know would otherwise
                // widen the filter to everything.
                None if *raw == pb::EventType::Unspecified as i32 => {}
                None => {
                    return Err(to_status(FlowError::invalid(
                        "types",
                        format!("{raw} is not an event type of this service"),
                    )));
                }
            }
        }
        let since = r.since_event_id.trim().to_owned();
        let core = self.core.clone();
        // The start is checked before the stream opens, so an expired or foreign id is the
        // call's answer rather than a stream that fails at once.
        let (after, first) = if since.is_empty() {
            (core.events_now().await.map_err(to_status)?, Vec::new())
        } else {
            let first = core
                .next_events(&since, Duration::ZERO)
                .await
                .map_err(to_status)?;
            (since, first)
        };
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        // Ends the response itself (buffered messages and all) at shutdown or when the
        // watcher is cut off, so a client that stopped reading holds nothing.
        let stop = self.stop.child_token();
        let ended = stop.clone();
        tracing::info!(%service, since = %after, "event watcher connected");
        tokio::spawn(async move {
            let _permit = permit;
            let ended = feed(&core, &tx, &stop, &types, after, first).await;
            // The last word, if there is room: a watcher that stopped reading gets none.
            if let Err(status) = ended {
                let _ = tx.try_send(Err(status));
            }
        });
        let stream = ReceiverStream::new(rx).take_until(ended.cancelled_owned());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn find_user_by_email(
        &self,
        request: Request<pb::FindUserByEmailRequest>,
    ) -> Result<Response<pb::FindUserByEmailResponse>, Status> {
        self.auth.require_operator(&request)?;
        let user = self
            .core
            .find_user_by_email(&request.get_ref().email)
            .await
            .map_err(to_status)?;
        ok(pb::FindUserByEmailResponse {
            account: Some(convert::account(user)),
        })
    }

    async fn disable_user(
        &self,
        request: Request<pb::DisableUserRequest>,
    ) -> Result<Response<pb::DisableUserResponse>, Status> {
        let service = self.auth.require_operator(&request)?;
        let r = request.get_ref();
        let (user, ended) = self
            .core
            .disable_user(&r.user_id, &r.reason, r.until_time.map(convert::millis))
            .await
            .map_err(to_status)?;
        tracing::warn!(%service, user_id = %user.id.0, "DisableUser");
        ok(pb::DisableUserResponse {
            account: Some(convert::account(user)),
            sessions_ended: i32::try_from(ended).unwrap_or(i32::MAX),
        })
    }

    async fn enable_user(
        &self,
        request: Request<pb::EnableUserRequest>,
    ) -> Result<Response<pb::EnableUserResponse>, Status> {
        let service = self.auth.require_operator(&request)?;
        let user = self
            .core
            .enable_user(&request.get_ref().user_id)
            .await
            .map_err(to_status)?;
        tracing::warn!(%service, user_id = %user.id.0, "EnableUser");
        ok(pb::EnableUserResponse {
            account: Some(convert::account(user)),
        })
    }

    async fn revoke_user_sessions(
        &self,
        request: Request<pb::RevokeUserSessionsRequest>,
    ) -> Result<Response<pb::RevokeUserSessionsResponse>, Status> {
        let service = self.auth.require_operator(&request)?;
        let ended = self
            .core
            .revoke_user_sessions(&request.get_ref().user_id)
            .await
            .map_err(to_status)?;
        tracing::warn!(%service, user_id = %request.get_ref().user_id, "RevokeUserSessions");
        ok(pb::RevokeUserSessionsResponse {
            sessions_ended: i32::try_from(ended).unwrap_or(i32::MAX),
        })
    }

    async fn list_user_sessions(
        &self,
        request: Request<pb::ListUserSessionsRequest>,
    ) -> Result<Response<pb::ListUserSessionsResponse>, Status> {
        self.auth.require_operator(&request)?;
        let sessions = self
            .core
            .list_user_sessions(&request.get_ref().user_id)
            .await
            .map_err(to_status)?;
        ok(pb::ListUserSessionsResponse {
            sessions: sessions.into_iter().map(convert::session).collect(),
        })
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        let service = self.auth.require_operator(&request)?;
        let r = request.get_ref();
        self.core
            .delete_user(&r.user_id, &r.reason)
            .await
            .map_err(to_status)?;
        tracing::warn!(%service, user_id = %r.user_id, "DeleteUser");
        ok(pb::DeleteUserResponse {})
    }

    async fn list_user_security_events(
        &self,
        request: Request<pb::ListUserSecurityEventsRequest>,
    ) -> Result<Response<pb::ListUserSecurityEventsResponse>, Status> {
        self.auth.require_operator(&request)?;
        let r = request.get_ref();
        let page = self
            .core
            .list_user_security_events(&r.user_id, r.page_size, &r.page_token, &r.kinds)
            .await
            .map_err(to_status)?;
        let (events, next_page_token) = convert::security_page(page);
        ok(pb::ListUserSecurityEventsResponse {
            events,
            next_page_token,
        })
    }
}
