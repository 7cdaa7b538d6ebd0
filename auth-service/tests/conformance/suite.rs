use std::sync::Arc;

use auth_service::domain::{
    CodeHash, Email, NewUser, PasswordHash, Profile, SessionId, UserId, UserStatus, Username,
    now_ms,
};
use auth_service::store::*;
use futures::future::join_all;

/// Generates one `#[tokio::test]` per suite function for a backend factory expression.
macro_rules! all_tests {
    ($make:expr) => {
        suite::all_tests!(@each $make;
            users_are_unique_by_email_and_case_insensitive_username,
            presence_and_password_updates,
            a_code_is_issued_with_cooldown_and_consumed_once,
            wrong_codes_are_counted_across_resends_until_void,
            a_lockout_runs_out_and_a_new_code_gets_a_fresh_budget,
            expired_codes_and_the_daily_limit,
            purposes_do_not_mix,
            refresh_rotation_follows_the_grace_rule,
            a_reuse_stamped_before_the_first_use_is_still_a_reuse,
            sessions_list_revoke_and_revoke_all,
            revoke_by_refresh_needs_a_usable_token,
            rate_limits_count_in_a_fixed_window,
            the_mail_queue_leases_retries_and_dead_letters,
            concurrent_right_codes_consume_once,
            concurrent_rotations_without_grace_continue_at_most_once,
            concurrent_creates_of_one_email_make_one_user,
            health_answers
        );
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                suite::$name($make.await).await;
            }
        )*
    };
}
pub(crate) use all_tests;

const MIN: i64 = 60_000;

fn policy() -> CodePolicy {
    CodePolicy {
        ttl_ms: 5 * MIN,
        cooldown_ms: MIN,
        max_attempts: 5,
        max_sends_per_day: 10,
        lockout_ms: 15 * MIN,
        record_ttl_ms: 24 * 60 * MIN,
    }
}

fn unique(tag: &str) -> String {
    format!("{tag}{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

fn new_user(tag: &str) -> NewUser {
    let name = unique(tag);
    NewUser {
        username: Username::parse(&name).unwrap(),
        email: Email::parse(&format!("{name}@example.com")).unwrap(),
        password_hash: PasswordHash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        profile: Profile {
            bio: "hi".into(),
            avatar_url: String::new(),
        },
    }
}

fn code(n: u8) -> CodeHash {
    CodeHash([n; 32])
}

fn hash(n: u8) -> RefreshHash {
    [n; 32]
}

fn registration(user: &NewUser) -> PendingPayload {
    PendingPayload::Registration(user.clone())
}

/// Starts (or restarts) the pending registration of `user` with code `n`.
async fn start_registration(
    s: &Stores,
    user: &NewUser,
    n: u8,
    now: i64,
    p: &CodePolicy,
) -> Result<CodeIssued, IssueError> {
    s.pending
        .issue_code(
            CodePurpose::Registration,
            &user.email,
            Some(&registration(user)),
            &code(n),
            now,
            p,
        )
        .await
}

/// Presents code `n` for the pending registration of `email`.
async fn guess(
    s: &Stores,
    email: &Email,
    n: u8,
    now: i64,
    p: &CodePolicy,
) -> Result<PendingPayload, VerifyError> {
    s.pending
        .verify_code(CodePurpose::Registration, email, &code(n), now, p)
        .await
}

pub async fn users_are_unique_by_email_and_case_insensitive_username(s: Stores) {
    let now = now_ms();
    let a = new_user("Uniq");
    let created = s.users.create_user(&a, now).await.unwrap();
    assert_eq!(created.email, a.email.as_str());
    assert_eq!(created.status, UserStatus::Offline);

    let mut same_email = new_user("other");
    same_email.email = a.email.clone();
    assert!(matches!(
        s.users.create_user(&same_email, now).await,
        Err(CreateUserError::EmailTaken)
    ));

    let mut same_name = new_user("other");
    same_name.username = Username::parse(&a.username.as_str().to_uppercase()).unwrap();
    assert!(matches!(
        s.users.create_user(&same_name, now).await,
        Err(CreateUserError::UsernameTaken)
    ));

    let by_id = s.users.find_by_id(&created.id).await.unwrap().unwrap();
    let by_email = s.users.find_by_email(&a.email).await.unwrap().unwrap();
    let lower = Username::parse(&a.username.as_str().to_lowercase()).unwrap();
    let by_name = s.users.find_by_username(&lower).await.unwrap().unwrap();
    assert_eq!(
        (by_id.id.clone(), by_email.id.clone()),
        (created.id.clone(), by_name.id.clone())
    );
    assert_eq!(
        by_id.username,
        a.username.as_str(),
        "the username keeps its case"
    );
    assert_eq!(by_id.profile, a.profile);
    assert_eq!(by_id.password_hash, a.password_hash);
    assert!(
        s.users
            .find_by_id(&UserId("missing".into()))
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn presence_and_password_updates(s: Stores) {
    let user = s
        .users
        .create_user(&new_user("pres"), now_ms())
        .await
        .unwrap();
    let at = now_ms() + 5;
    s.users
        .set_presence(&user.id, UserStatus::Online, at)
        .await
        .unwrap();
    let u = s.users.find_by_id(&user.id).await.unwrap().unwrap();
    assert_eq!(u.status, UserStatus::Online);
    // A backend may stamp lastSeen with its own clock (`$currentDate`): close to `at` is right.
    let seen = u.last_seen.expect("lastSeen set");
    assert!((seen - at).abs() < 60_000, "lastSeen {seen} vs {at}");
    assert!(
        s.users
            .set_password(&user.id, &PasswordHash("new".into()), at)
            .await
            .unwrap()
    );
    assert_eq!(
        s.users
            .find_by_id(&user.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .0,
        "new"
    );
    assert!(
        !s.users
            .set_password(&UserId("missing".into()), &PasswordHash("x".into()), at)
            .await
            .unwrap()
    );
}

pub async fn a_code_is_issued_with_cooldown_and_consumed_once(s: Stores) {
    let (p, now) = (policy(), now_ms());
    let user = new_user("code");
    let email = user.email.clone();
    let issued = start_registration(&s, &user, 1, now, &p).await.unwrap();
    assert_eq!(
        issued,
        CodeIssued {
            code_expires_at: now + 5 * MIN,
            resend_at: now + MIN,
            attempts_remaining: 5
        }
    );
    let again = s
        .pending
        .issue_code(
            CodePurpose::Registration,
            &email,
            None,
            &code(2),
            now + 1000,
            &p,
        )
        .await;
    assert!(matches!(again, Err(IssueError::Cooldown { retry_at }) if retry_at == now + MIN));
    let missing = Email::parse("nobody@example.com").unwrap();
    assert!(matches!(
        s.pending
            .issue_code(CodePurpose::Registration, &missing, None, &code(1), now, &p)
            .await,
        Err(IssueError::NotFound)
    ));
    let payload = guess(&s, &email, 1, now + 10, &p).await.unwrap();
    let PendingPayload::Registration(back) = payload else {
        panic!("wrong payload")
    };
    assert_eq!(
        (back.email, back.username.as_str(), back.password_hash),
        (
            user.email.clone(),
            user.username.as_str(),
            user.password_hash.clone()
        )
    );
    assert!(matches!(
        guess(&s, &email, 1, now + 20, &p).await,
        Err(VerifyError::NotFound)
    ));
}

pub async fn wrong_codes_are_counted_across_resends_until_void(s: Stores) {
    let (p, now) = (policy(), now_ms());
    let user = new_user("wrong");
    let email = user.email.clone();
    start_registration(&s, &user, 1, now, &p).await.unwrap();
    for left in [4, 3] {
        let r = guess(&s, &email, 9, now + 1, &p).await;
        assert!(
            matches!(r, Err(VerifyError::Wrong { attempts_remaining }) if attempts_remaining == left),
            "{r:?}"
        );
    }
    let resent = s
        .pending
        .issue_code(
            CodePurpose::Registration,
            &email,
            None,
            &code(2),
            now + MIN,
            &p,
        )
        .await
        .unwrap();
    assert_eq!(resent.attempts_remaining, 3);
    assert!(
        matches!(
            guess(&s, &email, 1, now + MIN + 1, &p).await,
            Err(VerifyError::Wrong {
                attempts_remaining: 2
            })
        ),
        "the old code is void after a resend"
    );
    // Starting over with a payload keeps the count too.
    let restarted = start_registration(&s, &user, 3, now + 2 * MIN, &p)
        .await
        .unwrap();
    assert_eq!(restarted.attempts_remaining, 2);
    for left in [1, 0] {
        let r = guess(&s, &email, 9, now + 2 * MIN + 1, &p).await;
        assert!(
            matches!(r, Err(VerifyError::Wrong { attempts_remaining }) if attempts_remaining == left),
            "{r:?}"
        );
    }
    let t = now + 2 * MIN + 2;
    let r = guess(&s, &email, 3, t, &p).await;
    assert!(
        matches!(r, Err(VerifyError::Exhausted { retry_at }) if retry_at > t),
        "{r:?}"
    );
    let r = s
        .pending
        .issue_code(
            CodePurpose::Registration,
            &email,
            None,
            &code(4),
            now + 4 * MIN,
            &p,
        )
        .await;
    assert!(matches!(r, Err(IssueError::Locked { .. })), "{r:?}");
}

pub async fn a_lockout_runs_out_and_a_new_code_gets_a_fresh_budget(s: Stores) {
    let (p, now) = (policy(), now_ms());
    let user = new_user("lock");
    let email = user.email.clone();
    start_registration(&s, &user, 1, now, &p).await.unwrap();
    for _ in 0..5 {
        let _ = guess(&s, &email, 9, now + 1, &p).await;
    }
    let after = now + 1 + p.lockout_ms + 1;
    let fresh = start_registration(&s, &user, 5, after, &p).await.unwrap();
    assert_eq!(fresh.attempts_remaining, 5);
    guess(&s, &email, 5, after + 1, &p).await.unwrap();
}

pub async fn expired_codes_and_the_daily_limit(s: Stores) {
    let p = CodePolicy {
        max_sends_per_day: 3,
        ..policy()
    };
    let now = now_ms();
    let user = new_user("daily");
    let email = user.email.clone();
    start_registration(&s, &user, 1, now, &p).await.unwrap();
    assert!(matches!(
        guess(&s, &email, 1, now + p.ttl_ms, &p).await,
        Err(VerifyError::Expired)
    ));
    s.pending
        .issue_code(
            CodePurpose::Registration,
            &email,
            None,
            &code(2),
            now + MIN,
            &p,
        )
        .await
        .unwrap();
    s.pending
        .issue_code(
            CodePurpose::Registration,
            &email,
            None,
            &code(3),
            now + 2 * MIN,
            &p,
        )
        .await
        .unwrap();
    let r = s
        .pending
        .issue_code(
            CodePurpose::Registration,
            &email,
            None,
            &code(4),
            now + 3 * MIN,
            &p,
        )
        .await;
    assert!(
        matches!(r, Err(IssueError::DailyLimit { retry_at }) if retry_at == now + 24 * 60 * MIN),
        "{r:?}"
    );
    // The expired check did not cost an attempt; the last code still works.
    guess(&s, &email, 3, now + 3 * MIN, &p).await.unwrap();
}

pub async fn purposes_do_not_mix(s: Stores) {
    let (p, now) = (policy(), now_ms());
    let user = new_user("mix");
    let email = user.email.clone();
    start_registration(&s, &user, 1, now, &p).await.unwrap();
    let reset = PendingPayload::PasswordReset {
        user_id: Some(UserId("u1".into())),
    };
    s.pending
        .issue_code(
            CodePurpose::PasswordReset,
            &email,
            Some(&reset),
            &code(2),
            now,
            &p,
        )
        .await
        .unwrap();
    assert!(matches!(
        s.pending
            .verify_code(CodePurpose::PasswordReset, &email, &code(1), now + 1, &p)
            .await,
        Err(VerifyError::Wrong { .. })
    ));
    let back = s
        .pending
        .verify_code(CodePurpose::PasswordReset, &email, &code(2), now + 1, &p)
        .await
        .unwrap();
    assert!(
        matches!(back, PendingPayload::PasswordReset { user_id: Some(UserId(ref id)) } if id == "u1")
    );
    guess(&s, &email, 1, now + 1, &p).await.unwrap();
}

fn new_session(user: &UserId, refresh: RefreshHash, now: i64) -> NewSession {
    NewSession {
        id: SessionId::generate(),
        user_id: user.clone(),
        refresh_hash: refresh,
        expires_at: now + 60 * MIN,
        user_agent: "test-agent".into(),
        client_ip: "192.0.2.1".into(),
        created_at: now,
    }
}

pub async fn refresh_rotation_follows_the_grace_rule(s: Stores) {
    let now = now_ms();
    let user = UserId(unique("u"));
    let session = new_session(&user, hash(1), now);
    s.sessions.create_session(&session).await.unwrap();
    let id = &session.id;
    let grace = 10_000;
    let r = s
        .sessions
        .rotate_refresh(id, &hash(1), &hash(2), now + 120 * MIN, now + 1, grace)
        .await
        .unwrap();
    let RotateOutcome::Rotated(rec) = r else {
        panic!("{r:?}")
    };
    assert_eq!(
        (rec.last_used_at, rec.expires_at),
        (now + 1, now + 120 * MIN),
        "last use and expiry move"
    );
    // Inside the grace window: another valid child.
    let r = s
        .sessions
        .rotate_refresh(id, &hash(1), &hash(3), now + 120 * MIN, now + 5_000, grace)
        .await
        .unwrap();
    assert!(matches!(r, RotateOutcome::Rotated(_)), "{r:?}");
    // Both children work once.
    assert!(matches!(
        s.sessions
            .rotate_refresh(id, &hash(2), &hash(4), now + 120 * MIN, now + 6_000, grace)
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    assert!(matches!(
        s.sessions
            .rotate_refresh(id, &hash(3), &hash(5), now + 120 * MIN, now + 6_000, grace)
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    // Unknown token, wrong session: invalid, nothing ends.
    assert_eq!(
        s.sessions
            .rotate_refresh(id, &hash(99), &hash(6), now, now + 7_000, grace)
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
    assert_eq!(
        s.sessions
            .rotate_refresh(
                &SessionId::generate(),
                &hash(4),
                &hash(6),
                now,
                now + 7_000,
                grace
            )
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
    assert!(
        s.sessions
            .get_session(id, now + 7_000)
            .await
            .unwrap()
            .is_some()
    );
    // The first token again, after the window: replay, the session ends.
    let r = s
        .sessions
        .rotate_refresh(
            id,
            &hash(1),
            &hash(7),
            now + 120 * MIN,
            now + 1 + grace,
            grace,
        )
        .await
        .unwrap();
    assert_eq!(
        r,
        RotateOutcome::ReuseDetected {
            user_id: user.clone()
        }
    );
    assert!(
        s.sessions
            .get_session(id, now + 20_000)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.sessions
            .rotate_refresh(id, &hash(4), &hash(8), now, now + 20_000, grace)
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
}

/// Two instances (or two requests) read their clocks in one order and reach the store in the
/// other: the second use may carry a `now` earlier than the recorded use. Without a grace
/// window that is still a second use, so a replay.
pub async fn a_reuse_stamped_before_the_first_use_is_still_a_reuse(s: Stores) {
    let now = now_ms();
    let user = UserId(unique("u"));
    let session = new_session(&user, hash(40), now);
    s.sessions.create_session(&session).await.unwrap();
    let first = s
        .sessions
        .rotate_refresh(
            &session.id,
            &hash(40),
            &hash(41),
            now + 60 * MIN,
            now + 10,
            0,
        )
        .await
        .unwrap();
    assert!(matches!(first, RotateOutcome::Rotated(_)));
    let late = s
        .sessions
        .rotate_refresh(
            &session.id,
            &hash(40),
            &hash(42),
            now + 60 * MIN,
            now + 9,
            0,
        )
        .await
        .unwrap();
    assert_eq!(late, RotateOutcome::ReuseDetected { user_id: user });
    // With a grace window the same order is a benign race.
    let other = new_session(&UserId(unique("u")), hash(43), now);
    s.sessions.create_session(&other).await.unwrap();
    s.sessions
        .rotate_refresh(
            &other.id,
            &hash(43),
            &hash(44),
            now + 60 * MIN,
            now + 10,
            5_000,
        )
        .await
        .unwrap();
    let raced = s
        .sessions
        .rotate_refresh(
            &other.id,
            &hash(43),
            &hash(45),
            now + 60 * MIN,
            now + 9,
            5_000,
        )
        .await
        .unwrap();
    assert!(matches!(raced, RotateOutcome::Rotated(_)), "{raced:?}");
}

pub async fn sessions_list_revoke_and_revoke_all(s: Stores) {
    let now = now_ms();
    let (user, other) = (UserId(unique("u")), UserId(unique("o")));
    let a = new_session(&user, hash(10), now);
    let b = new_session(&user, hash(11), now + 1);
    let c = new_session(&user, hash(12), now + 2);
    let theirs = new_session(&other, hash(13), now);
    for sess in [&a, &b, &c, &theirs] {
        s.sessions.create_session(sess).await.unwrap();
    }
    let listed = s.sessions.list_sessions(&user, now + 3).await.unwrap();
    assert_eq!(
        listed.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        [c.id.clone(), b.id.clone(), a.id.clone()],
        "newest first"
    );
    assert_eq!(
        (listed[0].user_agent.as_str(), listed[0].client_ip.as_str()),
        ("test-agent", "192.0.2.1")
    );
    assert!(
        s.sessions
            .list_sessions(&user, now + 61 * MIN)
            .await
            .unwrap()
            .is_empty(),
        "expired sessions are not listed"
    );
    assert!(
        !s.sessions.revoke_session(&a.id, &other).await.unwrap(),
        "not the owner"
    );
    assert!(s.sessions.revoke_session(&a.id, &user).await.unwrap());
    assert!(!s.sessions.revoke_session(&a.id, &user).await.unwrap());
    assert_eq!(s.sessions.revoke_all(&user, Some(&c.id)).await.unwrap(), 1);
    assert_eq!(s.sessions.list_sessions(&user, now).await.unwrap().len(), 1);
    assert_eq!(s.sessions.revoke_all(&user, None).await.unwrap(), 1);
    assert_eq!(
        s.sessions.list_sessions(&other, now).await.unwrap().len(),
        1,
        "other users untouched"
    );
}

pub async fn revoke_by_refresh_needs_a_usable_token(s: Stores) {
    let now = now_ms();
    let user = UserId(unique("u"));
    let sess = new_session(&user, hash(20), now);
    s.sessions.create_session(&sess).await.unwrap();
    s.sessions
        .rotate_refresh(
            &sess.id,
            &hash(20),
            &hash(21),
            now + 60 * MIN,
            now + 1,
            1_000,
        )
        .await
        .unwrap();
    assert!(
        s.sessions
            .revoke_by_refresh(&sess.id, &hash(20), now + 5_000, 1_000)
            .await
            .unwrap()
            .is_none(),
        "a used-up token cannot log out"
    );
    assert!(
        s.sessions
            .revoke_by_refresh(&sess.id, &hash(99), now + 5_000, 1_000)
            .await
            .unwrap()
            .is_none()
    );
    let ended = s
        .sessions
        .revoke_by_refresh(&sess.id, &hash(21), now + 5_000, 1_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.user_id, user);
    assert!(
        s.sessions
            .get_session(&sess.id, now + 5_000)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn rate_limits_count_in_a_fixed_window(s: Stores) {
    let (key, now) = (unique("login:"), now_ms());
    assert_eq!(s.limits.hit(&key, 2, MIN, now).await.unwrap(), Ok(1));
    assert_eq!(s.limits.hit(&key, 2, MIN, now + 1).await.unwrap(), Ok(2));
    assert_eq!(
        s.limits.hit(&key, 2, MIN, now + 2).await.unwrap(),
        Err(now + MIN)
    );
    assert_eq!(
        s.limits.hit(&key, 2, MIN, now + MIN).await.unwrap(),
        Ok(1),
        "a new window"
    );
    s.limits.clear(&key).await.unwrap();
    assert_eq!(
        s.limits.hit(&key, 2, MIN, now + MIN + 1).await.unwrap(),
        Ok(1)
    );
}

pub async fn the_mail_queue_leases_retries_and_dead_letters(s: Stores) {
    // Other tests may share the backend: only messages made here are looked at.
    let now = now_ms() + 365 * 24 * 60 * MIN;
    let dead_before = s.mail.dead_letter_count().await.unwrap();
    let id = s.mail.enqueue(b"sealed-1", now).await.unwrap();
    let claimed = loop {
        let m = s
            .mail
            .claim_due(now, MIN)
            .await
            .unwrap()
            .expect("a due message");
        if m.id == id {
            break m;
        }
        s.mail.complete(&m.id).await.unwrap();
    };
    assert_eq!(
        (claimed.sealed.as_slice(), claimed.attempts),
        (b"sealed-1".as_slice(), 1)
    );
    assert!(
        s.mail
            .claim_due(now + 1, MIN)
            .await
            .unwrap()
            .is_none_or(|m| m.id != id),
        "leased"
    );
    s.mail.retry_at(&id, now + 10, "relay down").await.unwrap();
    let again = s.mail.claim_due(now + 10, MIN).await.unwrap().unwrap();
    assert_eq!((again.id.as_str(), again.attempts), (id.as_str(), 2));
    s.mail.dead_letter(&again.id, "gave up").await.unwrap();
    assert_eq!(s.mail.dead_letter_count().await.unwrap(), dead_before + 1);
    assert!(
        s.mail
            .claim_due(now + 10 * MIN, MIN)
            .await
            .unwrap()
            .is_none_or(|m| m.id != id)
    );
    let done = s.mail.enqueue(b"sealed-2", now).await.unwrap();
    assert!(s.mail.next_due().await.unwrap().is_some());
    let m = s.mail.claim_due(now, MIN).await.unwrap().unwrap();
    assert_eq!(m.id, done);
    s.mail.complete(&done).await.unwrap();
}

pub async fn concurrent_right_codes_consume_once(s: Stores) {
    let (p, now) = (policy(), now_ms());
    let user = new_user("race");
    let email = user.email.clone();
    start_registration(&s, &user, 1, now, &p).await.unwrap();
    let pending = s.pending.clone();
    let tasks = (0..20).map(|_| {
        let (pending, email, p) = (pending.clone(), email.clone(), p.clone());
        tokio::spawn(async move {
            pending
                .verify_code(CodePurpose::Registration, &email, &code(1), now + 1, &p)
                .await
        })
    });
    let results: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, VerifyError::NotFound))
    );
}

pub async fn concurrent_rotations_without_grace_continue_at_most_once(s: Stores) {
    let now = now_ms();
    let sess = new_session(&UserId(unique("u")), hash(30), now);
    s.sessions.create_session(&sess).await.unwrap();
    let sessions: Arc<dyn SessionStore> = s.sessions.clone();
    let tasks = (0..16u8).map(|i| {
        let (sessions, id) = (sessions.clone(), sess.id.clone());
        tokio::spawn(async move {
            sessions
                .rotate_refresh(&id, &hash(30), &hash(100 + i), now + 60 * MIN, now + 1, 0)
                .await
        })
    });
    let results: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    let rotated = results
        .iter()
        .filter(|r| matches!(r, RotateOutcome::Rotated(_)))
        .count();
    assert_eq!(rotated, 1, "{results:?}");
    assert!(
        s.sessions
            .get_session(&sess.id, now + 2)
            .await
            .unwrap()
            .is_none(),
        "the replays ended the family"
    );
}

pub async fn concurrent_creates_of_one_email_make_one_user(s: Stores) {
    let base = new_user("dup");
    let users = s.users.clone();
    let tasks = (0..20).map(|i| {
        let users = users.clone();
        let mut u = new_user("dup");
        u.email = base.email.clone();
        u.username = Username::parse(&format!("{}_{i}", base.username.as_str())).unwrap();
        tokio::spawn(async move { users.create_user(&u, now_ms()).await })
    });
    let results: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, CreateUserError::EmailTaken))
    );
}

pub async fn health_answers(s: Stores) {
    for backend in &s.health {
        backend.ping().await.unwrap();
    }
}
