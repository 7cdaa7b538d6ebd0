//! Calling the auth service on behalf of a browser: the metadata that goes with every call
//! (`authorization`, `x-request-id`, `x-client-ip`, `x-client-user-agent`, and the gateway's own
//! `x-service-authorization`), and one wrapper that times each call and maps its error.
//!
//! Every forwarded value is bounded, so the header block of a call stays a few KiB, far below
//! the 16 KiB an HTTP/2 server built on hyper accepts by default. That matters beyond the one
//! request: a header block over the server's limit gets a 431 on its stream, and one far over it
//! (more CONTINUATION frames than the limit can need) makes the server's h2 close the whole
//! connection with GOAWAY ENHANCE_YOUR_CALM, failing every call that shares it. So a token longer
//! than [`MAX_TOKEN_BYTES`] is refused here and never forwarded.

use std::{convert::Infallible, future::Future, time::Instant};

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, StatusCode, header, request::Parts},
};
use tonic::metadata::{AsciiMetadataValue, MetadataMap};

use crate::client_ip::ClientIp;
use crate::cookies;
use crate::error::ApiError;
use crate::request_id;
use crate::state::AppState;

/// Longest user agent passed on; the service truncates too, this only bounds the metadata.
pub const MAX_USER_AGENT: usize = 512;

/// Longest access or refresh token the gateway passes on. The service's tokens are a few hundred
/// bytes (an EdDSA JWT, an opaque refresh token); anything longer is not one of them.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Most bytes the metadata of one call can take, counted as HTTP/2 counts a header list (name +
/// value + 32 per field): a maximal token, user agent and request id, an IPv6 address, and the
/// longest service token. With tonic's own fields (`:path`, `te`, `grpc-timeout`, ...) a call's
/// header block stays under 8 KiB.
pub const MAX_METADATA_BYTES: usize = 6 * 1024;

/// A token as the request carried it.
enum Credential {
    Absent,
    Present(String),
    /// Longer than [`MAX_TOKEN_BYTES`]: never forwarded.
    Oversized,
}

impl Credential {
    fn from(token: Option<String>) -> Self {
        match token {
            None => Self::Absent,
            Some(t) if t.len() > MAX_TOKEN_BYTES => Self::Oversized,
            Some(t) => Self::Present(t),
        }
    }

    fn usable(&self) -> Option<&str> {
        match self {
            Self::Present(t) => Some(t),
            Self::Absent | Self::Oversized => None,
        }
    }
}

/// Who is asking, as the auth service should hear it. Holds tokens, so it has no `Debug`.
pub struct CallContext {
    metadata: MetadataMap,
    access_token: Credential,
    refresh_token: Credential,
    registration_id: Option<String>,
    reset_id: Option<String>,
    mfa_challenge_id: Option<String>,
    login_id: Option<String>,
    passkey_login_id: Option<String>,
}

impl FromRequestParts<AppState> for CallContext {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        let mut metadata = MetadataMap::new();
        let mut put = |key: &'static str, value: Option<&str>| {
            if let Some(v) = value.and_then(|v| AsciiMetadataValue::try_from(v).ok()) {
                metadata.insert(key, v);
            }
        };
        let request_id = headers
            .get("x-request-id")
            .filter(|v| request_id::acceptable(v))
            .and_then(|v| v.to_str().ok());
        put("x-request-id", request_id);
        let ip = parts.extensions.get::<ClientIp>().map(|c| c.0.to_string());
        put("x-client-ip", ip.as_deref());
        // `to_str` only accepts visible ASCII, so any byte index is a char boundary.
        let agent = header_str(headers, header::USER_AGENT.as_str())
            .map(|ua| &ua[..ua.len().min(MAX_USER_AGENT)]);
        put("x-client-user-agent", agent);
        // One pass over the Cookie headers, in the order of `cookies::acting`.
        let [
            access,
            refresh,
            registration,
            reset,
            mfa,
            login,
            passkey_login,
        ] = cookies::read_all(
            headers,
            cookies::acting(app.cookies()).map(|spec| spec.name),
        );
        Ok(Self {
            metadata,
            // A bearer header is explicit; it wins over an ambient cookie.
            access_token: Credential::from(bearer(headers).or(access)),
            refresh_token: Credential::from(refresh),
            registration_id: registration,
            reset_id: reset,
            mfa_challenge_id: mfa,
            login_id: login,
            passkey_login_id: passkey_login,
        })
    }
}

impl CallContext {
    /// A request for the service with the caller's metadata and, when it has a usable one, its
    /// access token as `authorization: Bearer`. For calls that do not need a signed-in caller;
    /// an oversized token is left out.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = self.metadata.clone();
        if let Some(value) = self
            .access_token
            .usable()
            .and_then(|t| AsciiMetadataValue::try_from(format!("Bearer {t}")).ok())
        {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    /// A request that the caller's access token authenticates. A token over
    /// [`MAX_TOKEN_BYTES`] is refused here, as the service would refuse it, with 401
    /// `ACCESS_TOKEN_INVALID`, and the service never sees it. Without a token, the service
    /// answers `UNAUTHENTICATED`.
    pub fn signed_in_request<T>(&self, message: T) -> Result<tonic::Request<T>, ApiError> {
        match self.access_token {
            Credential::Oversized => Err(oversized("ACCESS_TOKEN_INVALID", "access token")),
            Credential::Absent | Credential::Present(_) => Ok(self.request(message)),
        }
    }

    /// The refresh token cookie, when the browser sent one. One over [`MAX_TOKEN_BYTES`] is
    /// refused with 401 `REFRESH_TOKEN_INVALID`.
    pub fn refresh_token(&self) -> Result<Option<&str>, ApiError> {
        match self.refresh_token {
            Credential::Oversized => Err(oversized("REFRESH_TOKEN_INVALID", "refresh token")),
            Credential::Absent | Credential::Present(_) => Ok(self.refresh_token.usable()),
        }
    }

    /// The id of this browser's pending sign-up (empty when it has none: the service then
    /// answers REGISTRATION_ID_REQUIRED). It travels in the message, not the metadata.
    pub fn registration_id(&self) -> String {
        self.registration_id.clone().unwrap_or_default()
    }

    /// The id of this browser's pending password reset (empty when it has none).
    pub fn reset_id(&self) -> String {
        self.reset_id.clone().unwrap_or_default()
    }

    /// The id of this browser's sign-in waiting for its second factor (empty when it has none:
    /// the service then names `challenge_id`).
    pub fn mfa_challenge_id(&self) -> String {
        self.mfa_challenge_id.clone().unwrap_or_default()
    }

    /// The id of this browser's pending sign-in by emailed code (empty when it has none: the
    /// service then answers LOGIN_ID_REQUIRED).
    pub fn login_id(&self) -> String {
        self.login_id.clone().unwrap_or_default()
    }

    /// The id of this browser's passwordless sign-in (empty when it has none: the service
    /// then names `login_id`).
    pub fn passkey_login_id(&self) -> String {
        self.passkey_login_id.clone().unwrap_or_default()
    }

    /// The metadata of a call, for tests of its size.
    #[cfg(test)]
    fn metadata(&self) -> &MetadataMap {
        &self.metadata
    }
}

/// The edge's answer to a token longer than any the service issues.
fn oversized(code: &'static str, what: &'static str) -> ApiError {
    crate::metrics::refused("token_too_large");
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        code,
        format!("the {what} is longer than {MAX_TOKEN_BYTES} bytes, so it is not valid"),
    )
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = header_str(headers, header::AUTHORIZATION.as_str())?;
    baatcheet_runtime::bearer::token(value).map(str::to_owned)
}

/// Awaits one RPC, records it in the metrics, and maps a failure with [`ApiError::from_status`].
pub async fn call<T>(
    rpc: &'static str,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, ApiError> {
    let started = Instant::now();
    let result = call.await;
    let code = match &result {
        Ok(_) => Some(tonic::Code::Ok),
        // Refused in the pool (MAX_IN_FLIGHT): no call was made; counted as refused there.
        Err(status) if crate::pool::is_own_refusal(status) => None,
        Err(status) => Some(status.code()),
    };
    if let Some(code) = code {
        crate::metrics::grpc_call(rpc, code, started.elapsed());
    }
    result
        .map(tonic::Response::into_inner)
        .map_err(|status| ApiError::from_status(&status))
}

/// A message field the service always sets; its absence is a service bug, answered as 500.
pub fn present<T>(field: Option<T>) -> Result<T, ApiError> {
    field.ok_or_else(|| {
        tracing::error!("the auth service left out a required field");
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use axum::http::Request;

    fn app() -> AppState {
        let config = Config::from_lookup(&|_| None).unwrap();
        let endpoint = tonic::transport::Endpoint::from_static("http://127.0.0.1:1");
        AppState::new(config, crate::pool::ConnectionPool::lazy(&endpoint, 1))
    }

    async fn context(request: Request<()>) -> CallContext {
        let (mut parts, ()) = request.into_parts();
        parts.extensions.insert(ClientIp(
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
        ));
        let Ok(ctx) = CallContext::from_request_parts(&mut parts, &app()).await;
        ctx
    }

    fn size(metadata: &MetadataMap) -> usize {
        metadata
            .clone()
            .into_headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum()
    }

    #[tokio::test]
    async fn the_metadata_of_a_call_is_bounded() {
        let huge = "x".repeat(100_000);
        let request = Request::builder()
            .header("x-request-id", &huge)
            .header("user-agent", &huge)
            .header(
                "authorization",
                format!("Bearer {}", "t".repeat(MAX_TOKEN_BYTES)),
            )
            .header("cookie", format!("refreshToken={huge}"))
            .body(())
            .unwrap();
        let ctx = context(request).await;
        let call = ctx.signed_in_request(()).unwrap();
        let metadata = call.metadata();
        assert!(metadata.get("x-request-id").is_none(), "not an id: dropped");
        assert_eq!(
            metadata.get("x-client-user-agent").unwrap().len(),
            MAX_USER_AGENT
        );
        assert_eq!(
            metadata.get("authorization").unwrap().len(),
            "Bearer ".len() + MAX_TOKEN_BYTES
        );
        // The pool adds the service token to the call.
        let service = crate::pool::SERVICE_AUTHORIZATION.len()
            + "Bearer ".len()
            + crate::config::MAX_SERVICE_TOKEN_BYTES
            + 32;
        let with_longest =
            size(metadata) + "x-request-id".len() + request_id::MAX_LEN + 32 + service;
        assert!(
            with_longest <= MAX_METADATA_BYTES,
            "{with_longest} > {MAX_METADATA_BYTES}"
        );
        assert!(size(ctx.metadata()) < MAX_METADATA_BYTES);
    }

    #[test]
    fn the_service_token_is_a_sensitive_bearer_header() {
        let token = secrecy::SecretString::from("bcs_abc");
        let value = crate::pool::service_authorization(&token).unwrap();
        assert_eq!(value, "Bearer bcs_abc");
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("bcs_abc"));
    }

    #[tokio::test]
    async fn oversized_tokens_are_refused_and_never_forwarded() {
        let long = "t".repeat(MAX_TOKEN_BYTES + 1);
        let bearer = Request::builder()
            .header("authorization", format!("Bearer {long}"))
            .body(())
            .unwrap();
        let cookies = Request::builder()
            .header("cookie", format!("accessToken={long}; refreshToken={long}"))
            .body(())
            .unwrap();
        for request in [bearer, cookies] {
            let ctx = context(request).await;
            let refused = ctx.signed_in_request(()).expect_err("refused");
            assert_eq!(
                (refused.status(), refused.code()),
                (StatusCode::UNAUTHORIZED, "ACCESS_TOKEN_INVALID")
            );
            assert!(ctx.request(()).metadata().get("authorization").is_none());
        }
        let ctx = context(
            Request::builder()
                .header("cookie", format!("refreshToken={long}"))
                .body(())
                .unwrap(),
        )
        .await;
        let refused = ctx.refresh_token().expect_err("refused");
        assert_eq!(
            (refused.status(), refused.code()),
            (StatusCode::UNAUTHORIZED, "REFRESH_TOKEN_INVALID")
        );

        // At the limit, a token is passed on for the service to judge.
        let ctx = context(
            Request::builder()
                .header("cookie", format!("accessToken={}", &long[1..]))
                .body(())
                .unwrap(),
        )
        .await;
        assert!(ctx.signed_in_request(()).is_ok());
        assert!(ctx.request(()).metadata().get("authorization").is_some());
    }
}
