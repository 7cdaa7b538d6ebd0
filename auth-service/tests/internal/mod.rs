//! InternalAuthService over real gRPC, on the embedded default and on Redis + MongoDB
//! (SecantusDB) with mail through SMTP: service credentials, the directory and profiles,
//! presence, and the event stream across two instances with the verifier library following
//! it.

mod directory;
mod events;
mod factors;
mod operator;
mod presence;
mod tokens;

use baatcheet_auth_api::v1::{self as pb, internal_auth_service_client::InternalAuthServiceClient};
use tonic::{Request, transport::Channel};

use crate::env::Backends;
use crate::helpers::{TestApp, spawn_app_with};

/// Where the instances of a test run.
pub enum Deployment {
    Sqlite,
    RedisMongo(Box<Backends>),
}

/// A service credential of this test and the SERVICE_TOKENS line that accepts it.
pub struct Credential {
    pub token: String,
    pub line: String,
}

pub fn credential(name: &str) -> Credential {
    let (token, line) = auth_service::crypto::mint_service_token(name).unwrap();
    Credential { token, line }
}

impl Deployment {
    pub async fn start(redis_mongo: bool) -> Self {
        if redis_mongo {
            Deployment::RedisMongo(Box::new(Backends::start(false).await))
        } else {
            Deployment::Sqlite
        }
    }

    /// An instance accepting `accepted` service credentials, with `extra` settings.
    pub async fn instance(&self, accepted: &[&Credential], extra: &[(&str, &str)]) -> TestApp {
        let lines = accepted
            .iter()
            .map(|c| c.line.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let mut vars = vec![("SERVICE_TOKENS", lines.as_str())];
        vars.extend_from_slice(extra);
        match self {
            Deployment::Sqlite => spawn_app_with(&vars).await,
            Deployment::RedisMongo(backends) => backends.instance(&vars).await,
        }
    }

    /// How many mails `email` got so far, where this deployment's mail lands.
    pub fn mails(&self, app: &TestApp, email: &str) -> usize {
        use baatcheet_test_support::mail::Mailbox;
        match self {
            Deployment::Sqlite => app.mails_to(email).len(),
            Deployment::RedisMongo(backends) => backends.smtp.mails_to(email).len(),
        }
    }

    /// The code of mail number `nth` to `email`, where this deployment's mail lands.
    pub async fn code(&self, app: &TestApp, email: &str, nth: usize) -> String {
        match self {
            Deployment::Sqlite => app.wait_for_code(email, nth).await,
            Deployment::RedisMongo(backends) => {
                let within = std::time::Duration::from_secs(15);
                backends.wait_for_code(email, nth, within).await
            }
        }
    }

    pub async fn signup(&self, app: &TestApp, tag: &str) -> (pb::User, pb::TokenPair) {
        let (name, mail) = (crate::helpers::username(tag), crate::helpers::email(tag));
        self.signup_as(app, &name, &mail).await
    }

    /// Signs up with this username and email.
    pub async fn signup_as(
        &self,
        app: &TestApp,
        name: &str,
        mail: &str,
    ) -> (pb::User, pb::TokenPair) {
        let (name, mail) = (name.to_owned(), mail.to_owned());
        match self {
            Deployment::Sqlite => app.signup(&name, &mail).await,
            Deployment::RedisMongo(backends) => backends.signup(app, &name, &mail).await,
        }
    }
}

/// A WatchEvents stream of `types` from now, read as the events of one user at a time.
pub struct Watcher(tonic::Streaming<pb::WatchEventsResponse>);

/// Watches `types` on `app` with the service credential `token`.
pub async fn watch(app: &TestApp, token: &str, types: &[pb::EventType]) -> Watcher {
    let request = pb::WatchEventsRequest {
        since_event_id: String::new(),
        types: types.iter().map(|t| *t as i32).collect(),
    };
    let stream = internal(app)
        .await
        .watch_events(with_token(request, token))
        .await
        .unwrap()
        .into_inner();
    Watcher(stream)
}

impl Watcher {
    /// The next event of `user` (others' are skipped), within 15 s.
    pub async fn next(&mut self, user: &str) -> pb::Event {
        loop {
            let message =
                tokio::time::timeout(std::time::Duration::from_secs(15), self.0.message())
                    .await
                    .expect("an event within 15 s")
                    .unwrap()
                    .unwrap();
            if let Some(event) = message.event.filter(|e| e.user_id == user) {
                return event;
            }
        }
    }
}

/// The internal API of `app`.
pub async fn internal(app: &TestApp) -> InternalAuthServiceClient<Channel> {
    InternalAuthServiceClient::connect(format!("http://{}", app.addr))
        .await
        .unwrap()
}

/// `message` with `authorization: Bearer <token>`.
pub fn with_token<T>(message: T, token: &str) -> Request<T> {
    crate::helpers::authed(message, token)
}

/// Generates a test per deployment from `async fn name(deployment: Deployment)`.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    super::$name(crate::internal::Deployment::start(false).await).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn redis_mongo() {
                    super::$name(crate::internal::Deployment::start(true).await).await;
                }
            }
        )*
    };
}
pub(crate) use on_every_backend;
