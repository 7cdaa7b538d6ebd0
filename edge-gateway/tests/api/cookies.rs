//! Cookie names by policy: `__Host-` cookies when Secure and host-only.

use reqwest::{Method, StatusCode, header};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn secure_cookies_take_the_host_prefix_and_are_accepted_back() {
    let app = spawn_app_with(Env::default().gateway("COOKIE_SECURE", "on")).await;
    let (username, email) = new_identity();
    app.register(&username, &email).await;
    let code = app.next_code(&email).await;
    let response = app
        .post_json(
            "/api/auth/verify-otp",
            json!({ "email": email, "otp": code }),
        )
        .await;
    let cookies = set_cookies(&response);
    let mut names: Vec<&str> = cookies.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "__Host-accessToken",
            "__Host-refreshToken",
            "__Host-registrationId"
        ],
        "the tokens, and the finished sign-up's cookie cleared"
    );
    assert_eq!(
        cookies["__Host-registrationId"].cookie.max_age(),
        Some(cookie::time::Duration::ZERO)
    );
    for set in cookies.values() {
        let c = &set.cookie;
        assert_eq!(c.secure(), Some(true), "{}", set.raw);
        assert_eq!(c.path(), Some("/"), "{}", set.raw);
        assert_eq!(c.domain(), None, "{}", set.raw);
        assert_eq!(c.http_only(), Some(true), "{}", set.raw);
        assert_eq!(c.same_site(), Some(cookie::SameSite::Strict), "{}", set.raw);
    }
    let session = session_from(&response);
    assert_eq!(session.prefix, "__Host-");

    // The prefixed cookies are what the gateway reads: "me", then a refresh.
    let (status, body) = app.get_me(&session).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["data"]["user"]["username"], username);
    let response = app
        .with_session(Method::POST, "/api/auth/refresh", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let fresh = session_from(&response);
    assert_ne!(fresh.refresh, session.refresh);
    let (status, _) = app.get_me(&fresh).await;
    assert_eq!(status, StatusCode::OK);

    // The same token under the plain name (what a sibling subdomain could toss) is not read.
    let (status, body) = read(
        app.request(Method::GET, "/api/auth/me")
            .header(header::COOKIE, format!("accessToken={}", fresh.access))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");

    // Logout clears the prefixed cookies, with the same Path=/.
    let response = app
        .with_session(Method::POST, "/api/auth/logout", &fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cleared = set_cookies(&response);
    for name in ["__Host-accessToken", "__Host-refreshToken"] {
        let c = &cleared[name].cookie;
        assert_eq!(c.path(), Some("/"), "{}", cleared[name].raw);
        assert_eq!(c.value(), "");
        assert_eq!(c.max_age().map(|d| d.whole_seconds()), Some(0));
    }
}

#[tokio::test]
async fn the_openapi_document_names_the_configured_cookies() {
    for (secure, access) in [("off", "accessToken"), ("on", "__Host-accessToken")] {
        let app = spawn_app_with(Env::default().gateway("COOKIE_SECURE", secure)).await;
        let (_, doc) = read(
            app.request(Method::GET, "/openapi.json")
                .send()
                .await
                .unwrap(),
        )
        .await;
        let scheme = &doc["components"]["securitySchemes"]["accessCookie"];
        assert_eq!(scheme["name"], access, "{scheme:#}");
        assert_eq!(scheme["in"], "cookie");
    }
}
