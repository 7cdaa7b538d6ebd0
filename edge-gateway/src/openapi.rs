//! The OpenAPI 3 document: paths and schemas come from the handlers' `#[utoipa::path]` and the
//! request/response structs' `ToSchema`, collected by `utoipa_axum::routes!` as the router is
//! built, so the document cannot drift from the routes.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Baat Cheet Auth — edge gateway",
        description = "HTTP/JSON for browsers over the auth service's gRPC API. Tokens travel only \
in httpOnly cookies (`accessToken` and `refreshToken`; `__Host-accessToken` and \
`__Host-refreshToken` when the gateway's cookies are Secure and host-only); non-browser clients may send \
`Authorization: Bearer <access token>` instead. Errors: `{ statusCode, success: false, \
error: { code, message, details } }`.",
        license(name = "MIT"),
    ),
    tags(
        (name = "registration", description = "Sign-up with an emailed code"),
        (name = "session", description = "Sign-in (password, emailed code, second factor), refresh, sign-out"),
        (name = "mfa", description = "Second factors: the authenticator app and recovery codes"),
        (name = "account", description = "The signed-in caller"),
        (name = "password", description = "Forgot, reset, change"),
        (name = "ops", description = "Health, readiness, metrics, keys, this document"),
    ),
    modifiers(&SecuritySchemes),
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        // The cookie schemes depend on the configuration: see [`name_cookies`].
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Names the cookie security schemes after the cookies this configuration sets.
pub fn name_cookies(doc: &mut utoipa::openapi::OpenApi, policy: &crate::config::CookiePolicy) {
    use crate::cookies;
    let components = doc.components.get_or_insert_with(Default::default);
    for (scheme, spec) in [
        ("accessCookie", cookies::access_cookie(policy)),
        ("refreshCookie", cookies::refresh_cookie(policy)),
        ("registrationCookie", cookies::registration_cookie(policy)),
        ("resetCookie", cookies::reset_cookie(policy)),
        ("mfaCookie", cookies::mfa_cookie(policy)),
        ("loginCodeCookie", cookies::login_code_cookie(policy)),
        ("passkeyLoginCookie", cookies::passkey_login_cookie(policy)),
    ] {
        let name = spec.name;
        components.add_security_scheme(
            scheme,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(name))),
        );
    }
}

/// Adds the answers the edge itself may give (see the crate README) to every operation that does
/// not document that status already: 400/413/415 where there is a JSON body, 403 and 429 under
/// /api/auth, 429 on the JWKS, and 500/503/504 everywhere the auth service is called.
pub fn document_edge_errors(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let api = path
            .strip_prefix(crate::api::API_PREFIX)
            .is_some_and(|rest| rest.starts_with('/'));
        let calls_service = api || path == "/.well-known/jwks.json" || path == "/readyz";
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.delete,
            &mut item.put,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let body = operation.request_body.is_some();
            let mut add = |status: &str, description: &str, when: bool| {
                if when {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error(description).into());
                }
            };
            add("400", "MALFORMED_JSON or INVALID_BODY", body);
            add(
                "403",
                "CSRF_REJECTED: token cookies from an origin not allowed",
                api,
            );
            let too_large = format!(
                "PAYLOAD_TOO_LARGE: body over {} KiB",
                crate::api::BODY_LIMIT / 1024
            );
            add("413", &too_large, body);
            add("415", "UNSUPPORTED_MEDIA_TYPE: send application/json", body);
            add(
                "429",
                "RATE_LIMITED (per client IP), with Retry-After",
                api || path == "/.well-known/jwks.json",
            );
            add("500", "INTERNAL", calls_service);
            add(
                "503",
                "UNAVAILABLE or DEADLINE_EXCEEDED: the auth service is unreachable or slow; \
                 SERVER_BUSY: MAX_IN_FLIGHT calls to it in flight already, with Retry-After",
                calls_service,
            );
            add("504", "GATEWAY_TIMEOUT: REQUEST_TIMEOUT passed", true);
        }
    }
}
