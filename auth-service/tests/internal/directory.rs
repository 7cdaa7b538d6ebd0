//! The directory (GetUser, BatchGetUsers, LookupUsers) and UpdateProfile.

use baatcheet_auth_api::v1 as pb;
use tonic::Code;

use super::{Deployment, credential, internal, on_every_backend, with_token};
use crate::helpers::{assert_error, authed, retry_secs, violated_fields};

on_every_backend!(
    the_directory_answers_public_views_in_request_order,
    profiles_change_by_field_mask_and_usernames_cool_down,
);

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

async fn the_directory_answers_public_views_in_request_order(d: Deployment) {
    let chat = credential("chat");
    let app = d.instance(&[&chat], &[]).await;
    let (ana, _) = d.signup(&app, "ana").await;
    let (bo, _) = d.signup(&app, "bo").await;
    let mut client = internal(&app).await;
    let batch = client
        .batch_get_users(with_token(
            pb::BatchGetUsersRequest {
                user_ids: vec![
                    bo.id.clone(),
                    "missing".into(),
                    ana.id.clone(),
                    bo.id.clone(),
                ],
            },
            &chat.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = batch.users.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, [bo.id.as_str(), ana.id.as_str()]);
    assert_eq!(batch.missing_user_ids, ["missing"]);
    assert_eq!(batch.users[1].username, ana.username);
    assert_eq!(
        batch.users[1].status,
        pb::UserStatus::Online as i32,
        "just signed in"
    );
    let looked = client
        .lookup_users(with_token(
            pb::LookupUsersRequest {
                usernames: vec![
                    ana.username.to_uppercase(),
                    "No_Such_User".into(),
                    "x y".into(),
                    ana.username.clone(),
                ],
            },
            &chat.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(looked.users.len(), 1, "two spellings of one name: one user");
    assert_eq!(looked.users[0].id, ana.id);
    assert_eq!(looked.missing_usernames, ["No_Such_User", "x y"]);
    assert_error(
        client
            .get_user(with_token(
                pb::GetUserRequest {
                    user_id: "0190a8e2-7c1d-7000-8000-000000000001".into(),
                },
                &chat.token,
            ))
            .await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    // More than 500 in one call: refused, naming the field and the limit.
    let too_many = client
        .batch_get_users(with_token(
            pb::BatchGetUsersRequest {
                user_ids: (0..501).map(|i| i.to_string()).collect(),
            },
            &chat.token,
        ))
        .await;
    let status = assert_error(too_many, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["user_ids"]);
    assert!(status.to_string().contains("500") || format!("{status:?}").contains("500"));
}

async fn profiles_change_by_field_mask_and_usernames_cool_down(d: Deployment) {
    let chat = credential("chat");
    let app = d
        .instance(&[&chat], &[("USERNAME_CHANGE_COOLDOWN", "1h")])
        .await;
    let (ana, tokens) = d.signup(&app, "pana").await;
    let (bo, _) = d.signup(&app, "pbo").await;
    let update = |request: pb::UpdateProfileRequest| {
        let mut client = app.client();
        let token = tokens.access_token.clone();
        async move {
            client
                .update_profile(authed(request, &token))
                .await
                .map(|r| r.into_inner())
        }
    };
    // Only the masked fields change: the username given here is not in the mask.
    let changed = update(pb::UpdateProfileRequest {
        bio: "hello there".into(),
        avatar_url: "https://cdn.example.com/ana.png".into(),
        username: "ignored_name".into(),
        update_mask: mask(&["bio", "avatar_url"]),
    })
    .await
    .unwrap();
    let user = changed.user.unwrap();
    assert_eq!(
        (
            user.bio.as_str(),
            user.avatar_url.as_str(),
            user.username.as_str()
        ),
        (
            "hello there",
            "https://cdn.example.com/ana.png",
            ana.username.as_str()
        )
    );
    assert_eq!(user.email, ana.email, "the owner sees the email");
    // Invalid input names each field; an empty or unknown mask names update_mask.
    let bad = update(pb::UpdateProfileRequest {
        bio: "b".repeat(151),
        avatar_url: "javascript:alert(1)".into(),
        update_mask: mask(&["bio", "avatar_url", "email"]),
        ..Default::default()
    })
    .await;
    let status = assert_error(bad, Code::InvalidArgument, "INVALID_ARGUMENT");
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(fields, ["avatar_url", "bio", "update_mask"]);
    let empty = update(pb::UpdateProfileRequest::default()).await;
    let status = assert_error(empty, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["update_mask"]);
    // Unauthenticated: refused.
    assert_error(
        app.client()
            .update_profile(pb::UpdateProfileRequest {
                update_mask: mask(&["bio"]),
                ..Default::default()
            })
            .await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    // A taken name (any case) is refused; a free one is taken, then the cooldown holds.
    let taken = update(pb::UpdateProfileRequest {
        username: bo.username.to_uppercase(),
        update_mask: mask(&["username"]),
        ..Default::default()
    })
    .await;
    assert_error(taken, Code::AlreadyExists, "USERNAME_TAKEN");
    let new_name = crate::helpers::username("renamed");
    let renamed = update(pb::UpdateProfileRequest {
        username: new_name.clone(),
        update_mask: mask(&["username"]),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(renamed.user.unwrap().username, new_name);
    let next = renamed.next_username_change_time.unwrap().seconds;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now + 3590..=now + 3610).contains(&next), "{next} vs {now}");
    let again = update(pb::UpdateProfileRequest {
        username: crate::helpers::username("again"),
        update_mask: mask(&["username"]),
        ..Default::default()
    })
    .await;
    let status = assert_error(again, Code::ResourceExhausted, "USERNAME_CHANGE_COOLDOWN");
    assert!(retry_secs(&status).is_some_and(|s| s > 3500), "{status:?}");
    // Others see the change through the directory, without the email.
    let seen = internal(&app)
        .await
        .get_user(with_token(
            pb::GetUserRequest {
                user_id: ana.id.clone(),
            },
            &chat.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(
        (seen.username.as_str(), seen.bio.as_str()),
        (new_name.as_str(), "hello there")
    );
    // Each change is an event every watcher gets: a user may make 30 an hour.
    let mut refused = None;
    for _ in 0..40 {
        let attempt = update(pb::UpdateProfileRequest {
            bio: "again".into(),
            update_mask: mask(&["bio"]),
            ..Default::default()
        })
        .await;
        if let Err(status) = attempt {
            refused = Some(status);
            break;
        }
    }
    let status = refused.expect("the hourly budget ends");
    assert_eq!(crate::helpers::reason(&status), "PROFILE_RATE_LIMITED");
    assert!(retry_secs(&status).is_some());
}
