//! Calling the auth service on behalf of a browser: the metadata that goes with every call
//! (`authorization`, `x-request-id`, `x-client-ip`, `x-client-user-agent`), and one wrapper that
//! times each call and maps its error.

use std::{convert::Infallible, future::Future, time::Instant};

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, header, request::Parts},
};
use tonic::metadata::{AsciiMetadataValue, MetadataMap};

use crate::client_ip::ClientIp;
use crate::cookies;
use crate::error::ApiError;
use crate::state::AppState;

/// Longest user agent passed on; the service truncates too, this only bounds the metadata.
const MAX_USER_AGENT: usize = 512;

/// Who is asking, as the auth service should hear it. Holds tokens, so it has no `Debug`.
pub struct CallContext {
    metadata: MetadataMap,
    access_token: Option<String>,
    refresh_token: Option<String>,
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
        put("x-request-id", header_str(headers, "x-request-id"));
        let ip = parts.extensions.get::<ClientIp>().map(|c| c.0.to_string());
        put("x-client-ip", ip.as_deref());
        // `to_str` only accepts visible ASCII, so any byte index is a char boundary.
        let agent = header_str(headers, header::USER_AGENT.as_str())
            .map(|ua| &ua[..ua.len().min(MAX_USER_AGENT)]);
        put("x-client-user-agent", agent);
        let cookie = |spec: cookies::CookieSpec| cookies::read(headers, spec.name);
        Ok(Self {
            metadata,
            // A bearer header is explicit; it wins over an ambient cookie.
            access_token: bearer(headers).or_else(|| cookie(cookies::access_cookie(app.cookies()))),
            refresh_token: cookie(cookies::refresh_cookie(app.cookies())),
        })
    }
}

impl CallContext {
    /// A request for the service with the caller's metadata and, when there is one, its access
    /// token as `authorization: Bearer`.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = self.metadata.clone();
        if let Some(value) = self
            .access_token
            .as_deref()
            .and_then(|t| AsciiMetadataValue::try_from(format!("Bearer {t}")).ok())
        {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    /// The refresh token cookie, when the browser sent one.
    pub fn refresh_token(&self) -> Option<&str> {
        self.refresh_token.as_deref()
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = header_str(headers, header::AUTHORIZATION.as_str())?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// Awaits one RPC, records it in the metrics, and maps a failure with [`ApiError::from_status`].
pub async fn call<T>(
    rpc: &'static str,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, ApiError> {
    let started = Instant::now();
    let result = call.await;
    let code = match &result {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    };
    crate::metrics::grpc_call(rpc, code, started.elapsed());
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
