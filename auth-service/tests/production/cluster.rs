//! The service on a Redis Cluster of three masters and three replicas (with MongoDB and SMTP):
//! the whole flow across slots on different nodes, two instances sharing it, and a master
//! killed mid-run whose replica takes over while the service keeps serving, without a restart.

use std::time::{Duration, Instant};

use baatcheet_auth_api::v1 as pb;
use tonic::Code;

use crate::env::{Backends, eventually};
use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_flow_runs_on_a_cluster_and_serves_again_after_a_master_fails() {
    let backends = Backends::start_on_cluster().await;
    // Many sign-ins of one account from one address in a short time are this test's point.
    let vars = [("LOGIN_MAX_ATTEMPTS", "10000")];
    let a = backends.instance(&vars).await;
    let b = backends.instance(&vars).await;

    // Users whose keys land on different slots (and so, mostly, on different nodes).
    let mut users = Vec::new();
    for i in 0..6 {
        let tag = format!("cl{i}");
        users.push(backends.signup(&a, &username(&tag), &email(&tag)).await);
    }
    // Rotation across instances, the session list, logout: the operations that touch several
    // keys, each in its user's slot.
    for (i, (user, tokens)) in users.iter_mut().enumerate() {
        let (first, second) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let pair = first.refresh(&tokens.refresh_token).await.unwrap();
        assert_eq!(second.me(&pair.access_token).await.unwrap().id, user.id);
        let again = second.refresh(&pair.refresh_token).await.unwrap();
        assert_eq!(second.sessions(&again.access_token).await.unwrap().len(), 1);
        *tokens = again;
    }
    let (_, last) = &users[5];
    b.client()
        .logout(pb::LogoutRequest {
            refresh_token: last.refresh_token.clone(),
        })
        .await
        .unwrap();
    assert_error(
        a.validate(&last.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );

    // Kill the master that holds user 0's sessions, right after a second of new sessions of
    // the users it holds: asynchronous replication may lose the newest of them.
    let cluster = backends.cluster.as_ref().unwrap();
    let victim = cluster.master_of(&format!("{{{}}}", users[0].0.id));
    let on_victim: Vec<&pb::User> = users
        .iter()
        .map(|(u, _)| u)
        .filter(|u| cluster.master_of(&format!("{{{}}}", u.id)).port() == victim.port())
        .collect();
    let mut recent = Vec::new();
    let started = Instant::now();
    // At most 20, so that user 0 (perhaps the only one there) stays below the session cap.
    for user in on_victim.iter().cycle().take(20) {
        if started.elapsed() > Duration::from_secs(1) {
            break;
        }
        let login = a.login(&user.username, PASSWORD).await.unwrap();
        recent.push(login.tokens.unwrap().access_token);
    }
    victim.stop();
    let killed_at = Instant::now();
    // Served again without a restart, once the replica is promoted.
    eventually(Duration::from_secs(40), "the service serves again", || {
        let (a, token) = (&a, users[0].1.access_token.clone());
        async move { a.validate(&token).await.is_ok() }
    })
    .await;
    let back_after = killed_at.elapsed();
    cluster.wait_healthy(Duration::from_secs(30));
    let mut survived = 0;
    for token in &recent {
        if a.validate(token).await.is_ok() {
            survived += 1;
        }
    }
    eprintln!(
        "failover: served again {back_after:.1?} after the kill; {survived} of {} sessions \
         started in the second before it survived",
        recent.len()
    );
    assert!(!recent.is_empty());
    // Every user (on every slot) signs in again, on both instances, and refreshes.
    for (i, (user, _)) in users.iter().enumerate() {
        let app = if i % 2 == 0 { &a } else { &b };
        let login = app.login(&user.username, PASSWORD).await.unwrap();
        let tokens = login.tokens.unwrap();
        app.me(&tokens.access_token).await.unwrap();
        app.refresh(&tokens.refresh_token).await.unwrap();
    }
    a.stop().await;
    b.stop().await;
}
