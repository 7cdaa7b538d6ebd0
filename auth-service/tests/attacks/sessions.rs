//! Sessions: forking a session with a copied refresh token, growing storage by rotating,
//! piling up sessions, and a logout that leaves the session alive.

use std::time::Duration;

use baatcheet_auth_api::v1 as pb;
use tonic::Code;

use crate::attacks::arena::{Arena, Backend, on_every_backend};
use crate::helpers::*;

on_every_backend!(
    a_copied_refresh_token_cannot_fork_the_session,
    thousands_of_rotations_keep_the_stored_state_constant,
    sessions_per_user_are_capped_and_the_least_recently_used_ends,
    logout_with_a_stale_refresh_token_still_ends_the_session,
);

async fn a_copied_refresh_token_cannot_fork_the_session(backend: Backend) {
    let arena = Arena::start(backend, &[("REFRESH_REUSE_GRACE", "2s")]).await;
    let app = &arena.app;
    let (_, tokens) = arena.signup(&username("fork"), &email("fork")).await;
    let stolen = tokens.refresh_token.clone();
    // The victim refreshes; the thief replays the copied token inside the grace window and
    // gets the very same successor: no second branch.
    let victims = app.refresh(&tokens.refresh_token).await.unwrap();
    let thiefs = app.refresh(&stolen).await.unwrap();
    assert_eq!(
        thiefs.refresh_token, victims.refresh_token,
        "one live token"
    );
    assert_eq!(thiefs.session_id, victims.session_id);
    // Whoever rotates it first owns the session; the other's copy becomes the previous token,
    // and presenting it after the window ends the session for both.
    let thief_next = app.refresh(&thiefs.refresh_token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    assert_error(
        app.refresh(&victims.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_REUSED",
    );
    assert_error(
        app.refresh(&thief_next.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_INVALID",
    );
    assert_error(
        app.validate(&thief_next.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    // The first token, long gone, is simply invalid.
    assert_error(
        app.refresh(&stolen).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_INVALID",
    );
}

async fn thousands_of_rotations_keep_the_stored_state_constant(backend: Backend) {
    let arena = Arena::start(backend, &[]).await;
    let app = &arena.app;
    let (_, tokens) = arena.signup(&username("rotate"), &email("rotate")).await;
    let mut refresh = app
        .refresh(&tokens.refresh_token)
        .await
        .unwrap()
        .refresh_token;
    let after_first = arena.stored_records().await;
    let mut client = app.client();
    for _ in 0..3_000 {
        refresh = client
            .refresh_session(pb::RefreshSessionRequest {
                refresh_token: refresh,
            })
            .await
            .unwrap()
            .into_inner()
            .tokens
            .unwrap()
            .refresh_token;
    }
    assert_eq!(
        arena.stored_records().await,
        after_first,
        "3,000 rotations left nothing behind"
    );
    app.refresh(&refresh).await.unwrap();
}

async fn sessions_per_user_are_capped_and_the_least_recently_used_ends(backend: Backend) {
    let arena = Arena::start(backend, &[("MAX_SESSIONS_PER_USER", "5")]).await;
    let app = &arena.app;
    let mail = email("cap");
    let (_, first) = arena.signup(&username("cap"), &mail).await;
    let mut others = Vec::new();
    for _ in 0..4 {
        others.push(app.login(&mail, PASSWORD).await.unwrap().tokens.unwrap());
    }
    // The first device stays in use while someone signs in over and over.
    let mut first = app.refresh(&first.refresh_token).await.unwrap();
    let before = arena.stored_records().await;
    for _ in 0..20 {
        app.login(&mail, PASSWORD).await.unwrap();
        first = app.refresh(&first.refresh_token).await.unwrap();
    }
    assert_eq!(
        app.sessions(&first.access_token).await.unwrap().len(),
        5,
        "at most MAX_SESSIONS_PER_USER"
    );
    assert!(
        arena.stored_records().await <= before + 1,
        "20 more sign-ins stored nothing more"
    );
    // The one in use survived; the idle ones were ended, least recently used first.
    app.validate(&first.access_token).await.unwrap();
    for ended in &others {
        assert_error(
            app.validate(&ended.access_token).await,
            Code::Unauthenticated,
            "SESSION_REVOKED",
        );
    }
}

async fn logout_with_a_stale_refresh_token_still_ends_the_session(backend: Backend) {
    let arena = Arena::start(backend, &[("REFRESH_REUSE_GRACE", "0s")]).await;
    let app = &arena.app;
    let (_, tokens) = arena.signup(&username("stale"), &email("stale")).await;
    // Another tab rotated the refresh token; this one still holds the old one.
    let rotated = app.refresh(&tokens.refresh_token).await.unwrap();
    let mut request = tonic::Request::new(pb::LogoutRequest {
        refresh_token: "not-a-token".into(),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", rotated.access_token).parse().unwrap(),
    );
    app.client()
        .logout(request)
        .await
        .expect("the access token's session ends instead");
    assert_error(
        app.validate(&rotated.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    assert_error(
        app.refresh(&rotated.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_INVALID",
    );
    // Without any credential that works, the answer says so.
    assert_error(
        app.client()
            .logout(pb::LogoutRequest {
                refresh_token: rotated.refresh_token.clone(),
            })
            .await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_INVALID",
    );
}
