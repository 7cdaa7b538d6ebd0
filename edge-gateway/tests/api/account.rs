//! me, sessions, DELETE sessions/{id}: what the caller sees of itself, and every 401.

use reqwest::{Method, StatusCode, header};

use crate::helpers::*;

#[tokio::test]
async fn me_needs_a_valid_access_token() {
    let app = spawn_app_with(Env::default().service("ACCESS_TOKEN_EXPIRY", "1s")).await;
    let (status, body) = read(
        app.request(Method::GET, "/api/auth/me")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");

    let (status, body) = read(
        app.request(Method::GET, "/api/auth/me")
            .header(header::COOKIE, "accessToken=not.a.jwt")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "ACCESS_TOKEN_INVALID",
    );

    let (_, _, session) = app.signed_up_user().await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, body) = app.get_me(&session).await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "ACCESS_TOKEN_EXPIRED",
    );
    // The refresh cookie outlives it: refresh, and "me" works again.
    let response = app
        .with_session(Method::POST, "/api/auth/refresh", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _) = app.get_me(&session_from(&response)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn sessions_list_marks_this_one_and_records_the_client() {
    let app = spawn_app().await;
    let (username, _, _first) = app.signed_up_user().await;
    let second = app.login(&username, PASSWORD).await;
    let (status, body) = read(
        app.with_session(Method::GET, "/api/auth/sessions", &second)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let sessions = body["data"]["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    for s in sessions {
        assert_eq!(s["userAgent"], USER_AGENT, "{s:#}");
        assert_eq!(s["clientIp"], "127.0.0.1", "{s:#}");
        assert!(s["createdAt"].is_string() && s["expiresAt"].is_string());
    }
}

#[tokio::test]
async fn revoking_a_session() {
    let app = spawn_app().await;
    let (username, _, first) = app.signed_up_user().await;
    let second = app.login(&username, PASSWORD).await;
    let (_, body) = read(
        app.with_session(Method::GET, "/api/auth/sessions", &second)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let other = body["data"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .expect("the other session")["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let path = format!("/api/auth/sessions/{other}");
    let (status, body) = read(
        app.with_session(Method::DELETE, &path, &second)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let (status, _) = app.get_me(&first).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Ended already: not found.
    let (status, body) = read(
        app.with_session(Method::DELETE, &path, &second)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");

    let (status, body) = read(
        app.with_session(Method::DELETE, "/api/auth/sessions/not-a-session", &second)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_ARGUMENT",
    );
    assert_eq!(detail_fields(&body), ["id"], "the path parameter's name");

    let (status, body) = read(app.request(Method::DELETE, &path).send().await.unwrap()).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
}

#[tokio::test]
async fn deleting_the_account_needs_one_proof_and_clears_the_cookies() {
    let app = spawn_app().await;
    let (username, email, session) = app.signed_up_user().await;
    let delete = |body: serde_json::Value| {
        app.with_session(Method::POST, "/api/auth/account/delete", &session)
            .json(&body)
            .send()
    };
    // Both deadlines of each session are listed.
    let (status, body) = read(
        app.with_session(Method::GET, "/api/auth/sessions", &session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let listed = &body["data"]["sessions"][0];
    assert!(
        listed["expiresAt"].is_string() && listed["maxExpiresAt"].is_string(),
        "{listed:#}"
    );

    let (status, body) = read(
        delete(serde_json::json!({ "password": "not the password!" }))
            .await
            .unwrap(),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "WRONG_PASSWORD",
    );
    let (status, body) = read(
        delete(serde_json::json!({ "password": PASSWORD, "totpCode": "123456" }))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body:#}");
    assert_eq!(detail_fields(&body), ["proof"]);
    assert_eq!(
        app.get_me(&session).await.0,
        StatusCode::OK,
        "nothing happened yet"
    );

    let response = delete(serde_json::json!({ "password": PASSWORD }))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cleared = set_cookies(&response);
    for name in ["accessToken", "refreshToken"] {
        let name = format!("{}{name}", session.prefix);
        assert_eq!(cleared[&name].cookie.value(), "", "{name} cleared");
    }
    let (status, body) = app.get_me(&session).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "SESSION_REVOKED");
    for identifier in [&username, &email] {
        let (status, body) = read(
            app.post_json(
                "/api/auth/login",
                serde_json::json!({ "identifier": identifier, "password": PASSWORD }),
            )
            .await,
        )
        .await;
        assert_error(
            status,
            &body,
            StatusCode::UNAUTHORIZED,
            "INVALID_CREDENTIALS",
        );
    }
}

#[tokio::test]
async fn an_email_change_is_confirmed_by_the_browser_that_asked() {
    let app = spawn_app().await;
    let (username, _, session) = app.signed_up_user().await;
    let other_browser = app.login(&username, PASSWORD).await;
    let (_, new_email) = new_identity();
    let (status, body) = read(
        app.with_session(Method::POST, "/api/auth/email/change", &session)
            .json(&serde_json::json!({ "newEmail": new_email, "currentPassword": PASSWORD }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert!(body["data"]["codeExpiresAt"].is_string(), "{body:#}");
    let code = app.next_code(&new_email).await;
    let confirm = |session: &Session| {
        app.with_session(Method::POST, "/api/auth/email/confirm", session)
            .json(&serde_json::json!({ "code": code }))
            .send()
    };
    let (status, body) = read(confirm(&other_browser).await.unwrap()).await;
    assert_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "EMAIL_CHANGE_NOT_FOUND",
    );
    let (status, body) = read(confirm(&session).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["data"]["user"]["email"], new_email.as_str());
    let (status, body) = app.get_me(&other_browser).await;
    assert_eq!(
        (status, body["data"]["user"]["email"].as_str()),
        (StatusCode::OK, Some(new_email.as_str()))
    );
}

#[tokio::test]
async fn the_security_log_lists_this_users_sign_ins_a_page_at_a_time() {
    let app = spawn_app().await;
    let (username, _, session) = app.signed_up_user().await;
    app.login(&username, PASSWORD).await;
    let get = |query: &str| {
        app.with_session(
            Method::GET,
            &format!("/api/auth/security-events{query}"),
            &session,
        )
        .send()
    };
    let (status, body) = read(get("?pageSize=1").await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let events = body["data"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["kind"], "sign_in");
    let token = body["data"]["nextPageToken"].as_str().unwrap().to_owned();
    let (status, body) = read(
        get(&format!("?pageSize=5&pageToken={token}"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(
        body["data"]["events"].as_array().unwrap().len(),
        1,
        "the sign-up's"
    );
    assert!(body["data"]["nextPageToken"].is_null());
    for (query, field) in [
        ("?pageSize=many", "pageSize"),
        ("?pageSize=1000", "pageSize"),
        ("?pageToken=x", "pageToken"),
    ] {
        let (status, body) = read(get(query).await.unwrap()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {body:#}"
        );
        assert_eq!(detail_fields(&body), [field], "{query}");
    }
}
