//! The security log in the flows: writing an entry where something happens to an account
//! (best effort: a log that cannot take it costs the entry, never the answer), and reading a
//! user's entries a page at a time, newest first, for the user (ListSecurityEvents) and for
//! operators (ListUserSecurityEvents, any user, filtered by kind).

use super::{AuthCore, Caller, ClientInfo, FlowError};
use crate::domain::{SecurityEvent, SecurityKind, SessionId, UserId, now_ms};

/// Entries of each kind a stranger can cause (a wrong password, a wrong second factor, a
/// refused sign-in of a suspended account) written per user per hour; beyond, the attempts are
/// still counted by the login limits but not written.
pub const FAILURES_PER_HOUR: u32 = 30;

/// Entries of one page when the caller asks for none; and the most it may ask for.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 100;

/// A page of a security log.
#[derive(Debug)]
pub struct SecurityPage {
    pub events: Vec<SecurityEvent>,
    /// The token of the next (older) page, when there may be one.
    pub next_page_token: Option<String>,
}

/// What to write: the kind, its detail, and the request it came from, if any.
pub(super) struct Entry<'a> {
    pub kind: SecurityKind,
    pub detail: String,
    pub client: Option<&'a ClientInfo>,
    pub session: Option<&'a SessionId>,
}

impl<'a> Entry<'a> {
    pub fn new(kind: SecurityKind) -> Self {
        Self {
            kind,
            detail: String::new(),
            client: None,
            session: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    pub fn from(mut self, client: &'a ClientInfo) -> Self {
        self.client = Some(client);
        self
    }

    pub fn session(mut self, session: &'a SessionId) -> Self {
        self.session = Some(session);
        self
    }

    fn event(self, user: &UserId) -> SecurityEvent {
        let (ip, user_agent) = match self.client {
            Some(c) => (c.ip_text(), c.user_agent.chars().take(256).collect()),
            None => (String::new(), String::new()),
        };
        SecurityEvent {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: user.clone(),
            at: now_ms(),
            kind: self.kind,
            detail: self.detail.chars().take(200).collect(),
            ip,
            user_agent,
            session_id: self.session.cloned(),
        }
    }
}

impl AuthCore {
    /// Writes an entry of `user`'s security log.
    pub(super) async fn audit(&self, user: &UserId, entry: Entry<'_>) {
        let event = entry.event(user);
        if let Err(e) = self.stores.security.record_security_event(&event).await {
            tracing::warn!(error = %e, kind = event.kind.as_str(), "cannot write a security-log entry");
        }
    }

    /// Writes an entry of what a stranger can cause (a wrong password or second factor), at
    /// most [`FAILURES_PER_HOUR`] per user an hour, so that no one can grow a log without
    /// bound. Not waited for: a refused sign-in must take as long for an account as for none.
    pub(super) fn audit_failure(&self, user: &UserId, entry: Entry<'_>) {
        let event = entry.event(user);
        let (log, limits) = (self.stores.security.clone(), self.stores.limits.clone());
        tokio::spawn(async move {
            // A share per kind: wrong passwords cannot hide wrong second factors, or the other
            // way round.
            let key = format!("audit:{}:{}", event.kind.as_str(), event.user_id.0);
            match limits
                .hit(&key, FAILURES_PER_HOUR, super::limits::HOUR_MS, event.at)
                .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return, // this hour's share of the log is spent
                Err(e) => tracing::warn!(error = %e, "cannot count a security-log entry"),
            }
            if let Err(e) = log.record_security_event(&event).await {
                tracing::warn!(error = %e, kind = event.kind.as_str(), "cannot write a security-log entry");
            }
        });
    }

    /// ListSecurityEvents: the caller's own log.
    pub async fn list_security_events(
        &self,
        caller: &Caller,
        page_size: i32,
        page_token: &str,
    ) -> Result<SecurityPage, FlowError> {
        self.security_page(&caller.user_id, page_size, page_token, &[])
            .await
    }

    /// ListUserSecurityEvents: any user's log, for operators, optionally of some kinds only.
    pub async fn list_user_security_events(
        &self,
        user_id: &str,
        page_size: i32,
        page_token: &str,
        kinds: &[String],
    ) -> Result<SecurityPage, FlowError> {
        let id =
            super::fields::user_id_field(user_id).map_err(|e| FlowError::invalid("user_id", e))?;
        if kinds.len() > SecurityKind::ALL.len() {
            return Err(FlowError::invalid(
                "kinds",
                format!("at most {} kinds", SecurityKind::ALL.len()),
            ));
        }
        let mut kinds = kinds
            .iter()
            .map(|k| {
                SecurityKind::parse(k.trim()).ok_or_else(|| {
                    let known: Vec<&str> = SecurityKind::ALL.iter().map(|k| k.as_str()).collect();
                    FlowError::invalid(
                        "kinds",
                        format!("{k:?} is not a kind of entry: one of {}", known.join(", ")),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        kinds.sort_by_key(|k| k.as_str());
        kinds.dedup();
        self.security_page(&id, page_size, page_token, &kinds).await
    }

    async fn security_page(
        &self,
        user: &UserId,
        page_size: i32,
        page_token: &str,
        kinds: &[SecurityKind],
    ) -> Result<SecurityPage, FlowError> {
        let limit = match page_size {
            0 => DEFAULT_PAGE,
            n if n < 0 || n as usize > MAX_PAGE => {
                return Err(FlowError::invalid(
                    "page_size",
                    format!("page_size must be 0 (for {DEFAULT_PAGE}) to {MAX_PAGE}"),
                ));
            }
            n => n as usize,
        };
        let before = match page_token.trim() {
            "" => None,
            token => Some(
                uuid::Uuid::try_parse(token)
                    .map_err(|_| {
                        FlowError::invalid(
                            "page_token",
                            "page_token is not one this service gave (next_page_token)",
                        )
                    })?
                    .to_string(),
            ),
        };
        let events = self
            .stores
            .security
            .security_events(user, before.as_deref(), limit, kinds)
            .await?;
        let next_page_token = (events.len() == limit)
            .then(|| events.last().map(|e| e.id.clone()))
            .flatten();
        Ok(SecurityPage {
            events,
            next_page_token,
        })
    }
}
