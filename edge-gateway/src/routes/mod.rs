//! The router: /api/auth (CSRF-checked, rate-limited, never cached), the JWKS (rate-limited),
//! the operator routes, the page, and the layers every response goes through.

pub mod account;
pub mod login_code;
pub mod mfa;
pub mod ops;
pub mod passkeys;
pub mod password;
pub mod proof;
pub mod registration;
pub mod session;

use std::sync::Arc;

use axum::{
    Extension, Router,
    extract::DefaultBodyLimit,
    http::StatusCode,
    middleware::{from_fn, from_fn_with_state},
    routing::get,
};
use tower_http::{
    compression::CompressionLayer,
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api::{API_PREFIX, BODY_LIMIT};
use crate::client_ip::resolve_client_ip;
use crate::error::{ApiError, shape_bare_errors};
use crate::openapi::{self, ApiDoc};
use crate::ratelimit::{self, IpLimiter};
use crate::{cors, csrf, metrics, page, request_id, security, state::AppState, telemetry};

/// The whole HTTP application.
pub fn router(app: AppState, limiter: Arc<IpLimiter>) -> Result<Router, serde_json::Error> {
    let config = app.config().clone();
    let auth = OpenApiRouter::new()
        .routes(routes!(registration::register))
        .routes(routes!(registration::verify_otp))
        .routes(routes!(registration::resend_otp))
        .routes(routes!(session::login))
        .routes(routes!(mfa::complete_mfa))
        .routes(routes!(login_code::request_login_code))
        .routes(routes!(login_code::login_with_code))
        .routes(routes!(mfa::start_totp))
        .routes(routes!(mfa::confirm_totp))
        .routes(routes!(mfa::disable_totp))
        .routes(routes!(mfa::regenerate_recovery_codes))
        .routes(routes!(passkeys::start_passkey_login))
        .routes(routes!(passkeys::passkey_login))
        .routes(routes!(passkeys::start_passkey_registration))
        .routes(routes!(passkeys::finish_passkey_registration))
        .routes(routes!(passkeys::list_passkeys))
        .routes(routes!(passkeys::delete_passkey))
        .routes(routes!(session::refresh))
        .routes(routes!(session::logout, session::logout_get))
        .routes(routes!(session::logout_all))
        .routes(routes!(account::me, account::update_me))
        .routes(routes!(account::sessions))
        .routes(routes!(account::revoke_session))
        .routes(routes!(account::delete_account))
        .routes(routes!(account::request_email_change))
        .routes(routes!(account::confirm_email_change))
        .routes(routes!(account::security_events))
        .routes(routes!(password::forgot))
        .routes(routes!(password::reset))
        .routes(routes!(password::change))
        .layer(from_fn_with_state(app.clone(), csrf::check_origin))
        .layer(security::no_store());
    let limited = OpenApiRouter::new()
        .nest(API_PREFIX, auth)
        .routes(routes!(ops::jwks))
        .layer(from_fn_with_state(limiter, ratelimit::limit));
    let mut operators = OpenApiRouter::new()
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::openapi_json));
    // With METRICS_ADDR, /metrics lives on its own listener ([`metrics_router`]) and is not
    // here at all (nor in the OpenAPI document).
    if config.server.metrics_addr.is_none() {
        operators = operators.routes(routes!(ops::metrics));
    }
    let (mut router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(limited)
        .merge(operators)
        .split_for_parts();
    openapi::document_edge_errors(&mut doc);
    openapi::name_cookies(&mut doc, &config.browser.cookies);
    router = router.layer(Extension(ops::OpenApiJson(doc.to_json()?.into())));
    if config.browser.serve_page {
        router = router.merge(page::router());
    }

    let helmet: Arc<[_]> = security::headers(config.browser.cookies.secure).into();

    // The last layer added runs first.
    Ok(router
        .fallback(|| async { ApiError::not_found() })
        .with_state(app.clone())
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            config.server.request_timeout,
        ))
        .layer(CompressionLayer::new())
        .layer(from_fn_with_state(helmet, security::add_headers))
        .layer(from_fn(shape_bare_errors))
        .layer(cors::layer(&config.browser.cors_origins))
        .layer(from_fn_with_state(app, cors::hide_policy_from_unlisted))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(telemetry::access_log())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(from_fn(request_id::drop_unacceptable))
        .layer(from_fn(metrics::track))
        .layer(from_fn_with_state(
            config.server.trust_proxy_hops,
            resolve_client_ip,
        )))
}

/// The whole application of the METRICS_ADDR listener: GET /metrics, and 404 for anything else.
pub fn metrics_router() -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics))
        .fallback(|| async { ApiError::not_found() })
        .layer(from_fn(shape_bare_errors))
}
