//! The conformance tests, each an async function over one backend's [`Stores`]: users, pending
//! codes and their budgets, sessions under the grace rule and the cap, rate limits, the mail
//! queue, and the races the atomic rules must survive. `all_tests!` makes them a backend's tests.

use std::sync::Arc;

use auth_service::domain::{
    AuthMethod, CodeHash, Email, Event, EventKind, FactorSummary, NewUser, PasswordHash, PendingId,
    Profile, ProfileChange, RevokeReason, SecurityEvent, SecurityKind, SessionId, SignIn, UserId,
    UserStatus, Username, now_ms,
};
use auth_service::store::*;
use futures::future::join_all;

/// Generates one `#[tokio::test]` per suite function for a backend factory expression.
macro_rules! all_tests {
    ($make:expr) => {
        suite::all_tests!(@each $make;
            users_are_unique_by_email_and_case_insensitive_username,
            presence_and_password_updates,
            a_user_id_is_taken_once,
            a_code_is_bound_to_its_request,
            wrong_codes_are_counted_per_request_across_resends_until_void,
            the_daily_guess_budget_of_an_email_spans_its_requests,
            expired_codes_and_the_daily_send_budget,
            a_verified_request_keeps_matching_until_finished,
            requests_expire,
            purposes_do_not_mix,
            rotation_keeps_one_live_token_and_replays_its_successor,
            a_reuse_stamped_before_the_first_use_is_still_a_reuse,
            thousands_of_rotations_keep_only_the_last_two_tokens,
            the_session_cap_ends_the_least_recently_used,
            sessions_list_revoke_and_revoke_all,
            revoke_by_refresh_needs_a_usable_token,
            rate_limits_count_in_a_fixed_window,
            the_mail_queue_leases_retries_and_dead_letters,
            dead_letters_are_purged_after_their_keep_time,
            concurrent_right_codes_all_match_and_wrong_ones_count_exactly,
            concurrent_rotations_without_grace_continue_at_most_once,
            concurrent_rotations_inside_the_grace_window_share_one_successor,
            concurrent_creates_of_one_email_make_one_user,
            directory_reads_in_one_call_and_profiles_change_atomically,
            two_renames_to_one_name_make_one_winner,
            every_session_and_user_change_is_in_the_event_log,
            the_event_log_wakes_readers_and_reports_what_it_dropped,
            presence_is_derived_from_heartbeats_and_ends_with_sessions,
            second_factors_are_per_user_and_each_step_and_code_counts_once,
            passkeys_are_capped_per_user_and_each_counter_counts_once,
            tickets_are_taken_once_and_expire,
            sessions_remember_how_they_signed_in,
            sessions_time_out_when_idle_and_at_their_maximum_lifetime,
            an_email_changes_only_to_a_free_address_and_a_user_is_deleted_whole,
            the_security_log_pages_newest_first_filters_and_trims,
            the_signing_key_ring_is_replaced_only_at_the_version_read,
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

const DAY: i64 = 24 * 60 * MIN;

fn policy() -> CodePolicy {
    CodePolicy {
        ttl_ms: 5 * MIN,
        cooldown_ms: MIN,
        max_attempts: 5,
        max_sends_per_day: 10,
        max_guesses_per_day: 20,
        pending_ttl_ms: 60 * MIN,
    }
}

fn unique(tag: &str) -> String {
    format!("{tag}{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

fn new_user(tag: &str) -> NewUser {
    let name = unique(tag);
    NewUser {
        id: UserId::generate(),
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

/// Starts a pending registration of `user` with code `n`; returns its id and what was issued.
async fn start_registration(
    s: &Stores,
    user: &NewUser,
    n: u8,
    now: i64,
    p: &CodePolicy,
) -> (PendingId, Result<CodeIssued, IssueError>) {
    let id = PendingId::generate();
    let issued = s
        .pending
        .issue_code(
            CodePurpose::Registration,
            &user.email,
            &id,
            Some(&registration(user)),
            &code(n),
            now,
            p,
        )
        .await;
    (id, issued)
}

/// Sends code `n` again for request `id` (a resend).
async fn resend(
    s: &Stores,
    email: &Email,
    id: &PendingId,
    n: u8,
    now: i64,
    p: &CodePolicy,
) -> Result<CodeIssued, IssueError> {
    s.pending
        .issue_code(CodePurpose::Registration, email, id, None, &code(n), now, p)
        .await
}

/// Presents code `n` for request `id` of `email`.
async fn guess(
    s: &Stores,
    email: &Email,
    id: &PendingId,
    n: u8,
    now: i64,
    p: &CodePolicy,
) -> Result<PendingPayload, VerifyError> {
    s.pending
        .verify_code(CodePurpose::Registration, email, id, &code(n), now, p)
        .await
}

#[track_caller]
fn assert_wrong(r: Result<PendingPayload, VerifyError>, left: u32) {
    assert!(
        matches!(r, Err(VerifyError::Wrong { attempts_remaining }) if attempts_remaining == left),
        "expected Wrong with {left} left: {r:?}"
    );
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

pub async fn a_user_id_is_taken_once(s: Stores) {
    let now = now_ms();
    let a = new_user("idonce");
    s.users.create_user(&a, now).await.unwrap();
    // The same id again (a racing verification of one registration) is told apart from a
    // taken email of another user, whatever else collides.
    let mut again = new_user("idtwice");
    again.id = a.id.clone();
    assert!(matches!(
        s.users.create_user(&again, now).await,
        Err(CreateUserError::IdTaken)
    ));
}

pub async fn a_code_is_bound_to_its_request(s: Stores) {
    let (p, now) = (policy(), now_ms());
    let user = new_user("code");
    let email = user.email.clone();
    let (id, issued) = start_registration(&s, &user, 1, now, &p).await;
    let issued = issued.unwrap();
    assert_eq!(
        (
            issued.code_expires_at,
            issued.resend_at,
            issued.attempts_remaining
        ),
        (now + 5 * MIN, now + MIN, 5)
    );
    assert!(matches!(issued.payload, PendingPayload::Registration(ref u) if u.id == user.id));
    // The cooldown is the request's own.
    let again = resend(&s, &email, &id, 2, now + 1000, &p).await;
    assert!(matches!(again, Err(IssueError::Cooldown { retry_at }) if retry_at == now + MIN));
    assert!(matches!(
        resend(&s, &email, &PendingId::generate(), 1, now, &p).await,
        Err(IssueError::NotFound)
    ));
    // A second request of the same email right away: allowed, with its own code.
    let other = new_user("code2");
    let mut other = other;
    other.email = email.clone();
    let (other_id, second) = start_registration(&s, &other, 2, now + 1000, &p).await;
    second.unwrap();
    // Each code fits only its own request, and an id of another email names nothing.
    assert_wrong(guess(&s, &email, &other_id, 1, now + 10, &p).await, 4);
    let stranger = Email::parse("stranger@example.com").unwrap();
    assert!(matches!(
        guess(&s, &stranger, &id, 1, now + 10, &p).await,
        Err(VerifyError::NotFound)
    ));
    let payload = guess(&s, &email, &id, 1, now + 10, &p).await.unwrap();
    let PendingPayload::Registration(back) = payload else {
        panic!("wrong payload")
    };
    assert_eq!(
        (
            back.id,
            back.email,
            back.username.as_str(),
            back.password_hash
        ),
        (
            user.id.clone(),
            user.email.clone(),
            user.username.as_str(),
            user.password_hash.clone()
        )
    );
    s.pending
        .finish_pending(CodePurpose::Registration, &email)
        .await
        .unwrap();
    for (rid, n) in [(&id, 1), (&other_id, 2)] {
        assert!(
            matches!(
                guess(&s, &email, rid, n, now + 20, &p).await,
                Err(VerifyError::NotFound)
            ),
            "finishing ends every request of the email"
        );
    }
}

pub async fn wrong_codes_are_counted_per_request_across_resends_until_void(s: Stores) {
    let (p, now) = (policy(), now_ms());
    let user = new_user("wrong");
    let email = user.email.clone();
    let (id, issued) = start_registration(&s, &user, 1, now, &p).await;
    issued.unwrap();
    for left in [4, 3] {
        assert_wrong(guess(&s, &email, &id, 9, now + 1, &p).await, left);
    }
    let resent = resend(&s, &email, &id, 2, now + MIN, &p).await.unwrap();
    assert_eq!(resent.attempts_remaining, 3, "a resend keeps the count");
    assert!(matches!(resent.payload, PendingPayload::Registration(_)));
    assert_wrong(guess(&s, &email, &id, 1, now + MIN + 1, &p).await, 2);
    for left in [1, 0] {
        assert_wrong(guess(&s, &email, &id, 9, now + MIN + 2, &p).await, left);
    }
    assert!(
        matches!(
            guess(&s, &email, &id, 2, now + MIN + 3, &p).await,
            Err(VerifyError::Exhausted)
        ),
        "void: even the right code is refused"
    );
    assert!(matches!(
        resend(&s, &email, &id, 3, now + 3 * MIN, &p).await,
        Err(IssueError::Exhausted)
    ));
    // Another request of the email has its own budget.
    let mut owner = new_user("wrong2");
    owner.email = email.clone();
    let (owner_id, fresh) = start_registration(&s, &owner, 4, now + 3 * MIN, &p).await;
    assert_eq!(fresh.unwrap().attempts_remaining, 5);
    guess(&s, &email, &owner_id, 4, now + 3 * MIN + 1, &p)
        .await
        .unwrap();
}

pub async fn the_daily_guess_budget_of_an_email_spans_its_requests(s: Stores) {
    let p = CodePolicy {
        max_guesses_per_day: 7,
        ..policy()
    };
    let now = now_ms();
    let user = new_user("gday");
    let email = user.email.clone();
    let (a, _) = start_registration(&s, &user, 1, now, &p).await;
    let (b, _) = start_registration(&s, &user, 2, now, &p).await;
    for left in (0..5).rev() {
        assert_wrong(guess(&s, &email, &a, 9, now + 10, &p).await, left);
    }
    for left in [4, 3] {
        assert_wrong(guess(&s, &email, &b, 9, now + 20, &p).await, left);
    }
    // Seven wrong guesses for the email today: nothing more is evaluated, even a right code.
    let r = guess(&s, &email, &b, 2, now + 30, &p).await;
    assert!(
        matches!(r, Err(VerifyError::DailyGuessLimit { retry_at }) if retry_at == now + DAY),
        "{r:?}"
    );
    // The refusal cost the request nothing.
    let (c, _) = start_registration(&s, &user, 3, now + 40, &p).await;
    assert!(matches!(
        guess(&s, &email, &c, 9, now + 50, &p).await,
        Err(VerifyError::DailyGuessLimit { .. })
    ));
    // A day after the email's window opened (its first code) it may be guessed at again.
    let later = now + DAY;
    let (d, _) = start_registration(&s, &user, 4, later, &p).await;
    guess(&s, &email, &d, 4, later + 1, &p).await.unwrap();
}

pub async fn expired_codes_and_the_daily_send_budget(s: Stores) {
    let p = CodePolicy {
        max_sends_per_day: 3,
        ..policy()
    };
    let now = now_ms();
    let user = new_user("daily");
    let email = user.email.clone();
    let (a, _) = start_registration(&s, &user, 1, now, &p).await;
    assert!(matches!(
        guess(&s, &email, &a, 1, now + p.ttl_ms, &p).await,
        Err(VerifyError::Expired)
    ));
    resend(&s, &email, &a, 2, now + MIN, &p).await.unwrap();
    let (b, second) = start_registration(&s, &user, 3, now + MIN, &p).await;
    second.unwrap();
    // Three codes sent to the email today, over its requests: no fourth, in either way.
    let (_, refused) = start_registration(&s, &user, 4, now + 2 * MIN, &p).await;
    assert!(
        matches!(refused, Err(IssueError::DailyLimit { retry_at }) if retry_at == now + DAY),
        "{refused:?}"
    );
    let r = resend(&s, &email, &a, 5, now + 3 * MIN, &p).await;
    assert!(matches!(r, Err(IssueError::DailyLimit { .. })), "{r:?}");
    // The expired check did not cost an attempt; the last codes still work.
    let resent = guess(&s, &email, &a, 2, now + 3 * MIN, &p).await;
    assert!(resent.is_ok(), "{resent:?}");
    guess(&s, &email, &b, 3, now + 3 * MIN, &p).await.unwrap();
    // A day after the first send the budget is back.
    let (_, next_day) = start_registration(&s, &user, 6, now + DAY, &p).await;
    next_day.unwrap();
}

pub async fn a_verified_request_keeps_matching_until_finished(s: Stores) {
    let (p, now) = (policy(), now_ms());
    let user = new_user("kept");
    let email = user.email.clone();
    let (id, _) = start_registration(&s, &user, 1, now, &p).await;
    guess(&s, &email, &id, 1, now + 1, &p).await.unwrap();
    // The user store failed, say: the same code works again, even after it expired.
    guess(&s, &email, &id, 1, now + 2, &p).await.unwrap();
    guess(&s, &email, &id, 1, now + p.ttl_ms + 1, &p)
        .await
        .unwrap();
    // A wrong code is still a wrong code.
    assert_wrong(guess(&s, &email, &id, 9, now + 3, &p).await, 4);
    s.pending
        .finish_pending(CodePurpose::Registration, &email)
        .await
        .unwrap();
    assert!(matches!(
        guess(&s, &email, &id, 1, now + 4, &p).await,
        Err(VerifyError::NotFound)
    ));
}

pub async fn requests_expire(s: Stores) {
    let (p, now) = (policy(), now_ms());
    let user = new_user("ttl");
    let email = user.email.clone();
    let (id, _) = start_registration(&s, &user, 1, now, &p).await;
    let later = now + p.pending_ttl_ms;
    assert!(matches!(
        guess(&s, &email, &id, 1, later, &p).await,
        Err(VerifyError::NotFound)
    ));
    assert!(matches!(
        resend(&s, &email, &id, 2, later, &p).await,
        Err(IssueError::NotFound)
    ));
}

pub async fn purposes_do_not_mix(s: Stores) {
    let (p, now) = (policy(), now_ms());
    let user = new_user("mix");
    let email = user.email.clone();
    let (reg, _) = start_registration(&s, &user, 1, now, &p).await;
    let reset_id = PendingId::generate();
    let reset = PendingPayload::PasswordReset {
        user_id: UserId("u1".into()),
    };
    s.pending
        .issue_code(
            CodePurpose::PasswordReset,
            &email,
            &reset_id,
            Some(&reset),
            &code(2),
            now,
            &p,
        )
        .await
        .unwrap();
    assert!(matches!(
        s.pending
            .verify_code(
                CodePurpose::PasswordReset,
                &email,
                &reg,
                &code(1),
                now + 1,
                &p
            )
            .await,
        Err(VerifyError::NotFound)
    ));
    let back = s
        .pending
        .verify_code(
            CodePurpose::PasswordReset,
            &email,
            &reset_id,
            &code(2),
            now + 1,
            &p,
        )
        .await
        .unwrap();
    assert!(
        matches!(back, PendingPayload::PasswordReset { user_id: UserId(ref id) } if id == "u1")
    );
    s.pending
        .finish_pending(CodePurpose::PasswordReset, &email)
        .await
        .unwrap();
    guess(&s, &email, &reg, 1, now + 1, &p).await.unwrap();
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
        sign_in: SignIn::one(AuthMethod::Password),
    }
}

/// The token installed by a rotation: hash(n), "sealed" as the bytes `sealed-<n>`.
fn next(n: u8, expires_at: i64) -> NextRefresh {
    NextRefresh {
        hash: hash(n),
        sealed: format!("sealed-{n}").into_bytes(),
        expires_at,
        max_lifetime_ms: 30 * 24 * 60 * 60_000,
    }
}

async fn create(s: &Stores, session: &NewSession) {
    s.sessions.create_session(session, 50).await.unwrap();
}

pub async fn rotation_keeps_one_live_token_and_replays_its_successor(s: Stores) {
    let now = now_ms();
    let user = UserId(unique("u"));
    let session = new_session(&user, hash(1), now);
    create(&s, &session).await;
    let (id, grace, later) = (&session.id, 10_000, now + 120 * MIN);
    let rotate = |presented: u8, n: u8, at: i64| {
        let (sessions, id) = (s.sessions.clone(), id.clone());
        async move {
            sessions
                .rotate_refresh(&id, &hash(presented), &next(n, later), at, grace)
                .await
                .unwrap()
        }
    };
    let RotateOutcome::Rotated(rec) = rotate(1, 2, now + 1).await else {
        panic!("the current token rotates")
    };
    assert_eq!(
        (rec.last_used_at, rec.expires_at),
        (now + 1, later),
        "last use and expiry move"
    );
    // The previous token inside the grace window: the successor its first use installed,
    // not a second branch.
    let r = rotate(1, 3, now + 5_000).await;
    let RotateOutcome::Replayed {
        session: rec,
        sealed,
    } = r
    else {
        panic!("{r:?}")
    };
    assert_eq!(
        (sealed, rec.user_id.clone()),
        (b"sealed-2".to_vec(), user.clone())
    );
    assert_eq!(
        rotate(3, 4, now + 5_001).await,
        RotateOutcome::Invalid,
        "the replay installed nothing"
    );
    // The successor rotates on; the first token is no longer the previous one.
    assert!(matches!(
        rotate(2, 5, now + 6_000).await,
        RotateOutcome::Rotated(_)
    ));
    assert_eq!(rotate(1, 6, now + 6_001).await, RotateOutcome::Invalid);
    // Unknown token, unknown session: invalid, nothing ends.
    assert_eq!(rotate(99, 6, now + 7_000).await, RotateOutcome::Invalid);
    assert_eq!(
        s.sessions
            .rotate_refresh(
                &SessionId::generate(),
                &hash(5),
                &next(6, later),
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
    // The previous token after the window: a replay, the session ends.
    assert_eq!(
        rotate(2, 7, now + 6_000 + grace).await,
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
    assert_eq!(rotate(5, 8, now + 20_000).await, RotateOutcome::Invalid);
}

/// Two instances (or two requests) read their clocks in one order and reach the store in the
/// other: the second use may carry a `now` earlier than the recorded use. Without a grace
/// window that is still a second use, so a replay.
pub async fn a_reuse_stamped_before_the_first_use_is_still_a_reuse(s: Stores) {
    let now = now_ms();
    let user = UserId(unique("u"));
    let session = new_session(&user, hash(40), now);
    create(&s, &session).await;
    let later = now + 60 * MIN;
    let first = s
        .sessions
        .rotate_refresh(&session.id, &hash(40), &next(41, later), now + 10, 0)
        .await
        .unwrap();
    assert!(matches!(first, RotateOutcome::Rotated(_)));
    let late = s
        .sessions
        .rotate_refresh(&session.id, &hash(40), &next(42, later), now + 9, 0)
        .await
        .unwrap();
    assert_eq!(late, RotateOutcome::ReuseDetected { user_id: user });
    // With a grace window the same order is a benign race.
    let other = new_session(&UserId(unique("u")), hash(43), now);
    create(&s, &other).await;
    s.sessions
        .rotate_refresh(&other.id, &hash(43), &next(44, later), now + 10, 5_000)
        .await
        .unwrap();
    let raced = s
        .sessions
        .rotate_refresh(&other.id, &hash(43), &next(45, later), now + 9, 5_000)
        .await
        .unwrap();
    assert!(
        matches!(raced, RotateOutcome::Replayed { ref sealed, .. } if sealed == b"sealed-44"),
        "{raced:?}"
    );
}

/// However long a session lives, only its current and previous tokens are known: older ones
/// are plain invalid (their hashes are gone), and the session is unharmed by them.
pub async fn thousands_of_rotations_keep_only_the_last_two_tokens(s: Stores) {
    let now = now_ms();
    let user = UserId(unique("u"));
    let session = new_session(&user, hash(0), now);
    create(&s, &session).await;
    let mut tokens = vec![[0u8; 32]];
    for i in 1..=300u32 {
        let mut h = [0u8; 32];
        h[..4].copy_from_slice(&i.to_be_bytes());
        let r = s
            .sessions
            .rotate_refresh(
                &session.id,
                tokens.last().unwrap(),
                &NextRefresh {
                    hash: h,
                    sealed: vec![1],
                    expires_at: now + 60 * MIN,
                    max_lifetime_ms: 30 * 24 * 60 * 60_000,
                },
                now + i as i64,
                0,
            )
            .await
            .unwrap();
        assert!(
            matches!(r, RotateOutcome::Rotated(_)),
            "rotation {i}: {r:?}"
        );
        tokens.push(h);
    }
    for old in [&tokens[0], &tokens[150], &tokens[297]] {
        assert_eq!(
            s.sessions
                .rotate_refresh(&session.id, old, &next(9, now + 60 * MIN), now + 400, 0)
                .await
                .unwrap(),
            RotateOutcome::Invalid
        );
    }
    assert!(
        s.sessions
            .get_session(&session.id, now + 400)
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn the_session_cap_ends_the_least_recently_used(s: Stores) {
    let now = now_ms();
    let user = UserId(unique("cap"));
    let sessions: Vec<NewSession> = (0..3u8)
        .map(|i| new_session(&user, hash(60 + i), now + i as i64))
        .collect();
    for sess in &sessions {
        assert!(s.sessions.create_session(sess, 3).await.unwrap().is_empty());
    }
    // The oldest one is used again, so the least recently used is now the second.
    let used = s
        .sessions
        .rotate_refresh(
            &sessions[0].id,
            &hash(60),
            &next(70, now + 61 * MIN),
            now + MIN,
            0,
        )
        .await
        .unwrap();
    assert!(matches!(used, RotateOutcome::Rotated(_)));
    let fourth = new_session(&user, hash(71), now + MIN + 1);
    let evicted = s.sessions.create_session(&fourth, 3).await.unwrap();
    assert_eq!(evicted, [sessions[1].id.clone()]);
    let mut live: Vec<_> = s
        .sessions
        .list_sessions(&user, now + MIN + 2)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    live.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        sessions[0].id.clone(),
        sessions[2].id.clone(),
        fourth.id.clone(),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(live, expected);
    assert_eq!(
        s.sessions
            .rotate_refresh(&sessions[1].id, &hash(61), &next(72, now), now + MIN + 3, 0)
            .await
            .unwrap(),
        RotateOutcome::Invalid,
        "an evicted session is over"
    );
    // A lower cap (a config change) makes room for the new one however many it takes.
    let fifth = new_session(&user, hash(73), now + MIN + 4);
    let evicted = s.sessions.create_session(&fifth, 1).await.unwrap();
    assert_eq!(evicted.len(), 3, "{evicted:?}");
    assert_eq!(
        s.sessions
            .list_sessions(&user, now + MIN + 5)
            .await
            .unwrap()
            .len(),
        1
    );
    // Other users are untouched.
    let other = new_session(&UserId(unique("cap")), hash(74), now);
    assert!(
        s.sessions
            .create_session(&other, 1)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn sessions_list_revoke_and_revoke_all(s: Stores) {
    let now = now_ms();
    let (user, other) = (UserId(unique("u")), UserId(unique("o")));
    let a = new_session(&user, hash(10), now);
    let b = new_session(&user, hash(11), now + 1);
    let c = new_session(&user, hash(12), now + 2);
    let theirs = new_session(&other, hash(13), now);
    for sess in [&a, &b, &c, &theirs] {
        create(&s, sess).await;
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
        !s.sessions
            .revoke_session(&a.id, &other, RevokeReason::Revoked, now)
            .await
            .unwrap(),
        "not the owner"
    );
    let revoke = |id: SessionId| {
        let (s, user) = (s.clone(), user.clone());
        async move {
            s.sessions
                .revoke_session(&id, &user, RevokeReason::Revoked, now)
                .await
                .unwrap()
        }
    };
    assert!(revoke(a.id.clone()).await);
    assert!(!revoke(a.id.clone()).await);
    assert_eq!(
        s.sessions
            .revoke_all(&user, Some(&c.id), RevokeReason::PasswordChanged, now)
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.sessions.list_sessions(&user, now).await.unwrap().len(), 1);
    assert_eq!(
        s.sessions
            .revoke_all(&user, None, RevokeReason::LogoutAll, now)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.sessions.list_sessions(&other, now).await.unwrap().len(),
        1,
        "other users untouched"
    );
}

pub async fn revoke_by_refresh_needs_a_usable_token(s: Stores) {
    let now = now_ms();
    let user = UserId(unique("u"));
    let rotated = |first: u8| {
        let (s, user) = (s.clone(), user.clone());
        async move {
            let sess = new_session(&user, hash(first), now);
            create(&s, &sess).await;
            let r = s
                .sessions
                .rotate_refresh(
                    &sess.id,
                    &hash(first),
                    &next(first + 1, now + 60 * MIN),
                    now + 1,
                    1_000,
                )
                .await
                .unwrap();
            assert!(matches!(r, RotateOutcome::Rotated(_)));
            sess.id
        }
    };
    // The previous token logs out inside the grace window only; the current one always.
    let a = rotated(20).await;
    assert!(
        s.sessions
            .revoke_by_refresh(&a, &hash(20), now + 5_000, 1_000)
            .await
            .unwrap()
            .is_none(),
        "a used-up token cannot log out"
    );
    assert!(
        s.sessions
            .revoke_by_refresh(&a, &hash(99), now + 5_000, 1_000)
            .await
            .unwrap()
            .is_none()
    );
    let ended = s
        .sessions
        .revoke_by_refresh(&a, &hash(21), now + 5_000, 1_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.user_id, user);
    assert!(
        s.sessions
            .get_session(&a, now + 5_000)
            .await
            .unwrap()
            .is_none()
    );
    let b = rotated(30).await;
    assert!(
        s.sessions
            .revoke_by_refresh(&b, &hash(30), now + 500, 1_000)
            .await
            .unwrap()
            .is_some(),
        "inside the window the previous token still names the session"
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
    assert_eq!(
        s.limits.count(&key, now + MIN + 1).await.unwrap(),
        (1, now + 2 * MIN)
    );
    assert_eq!(
        s.limits.count(&unique("none:"), now).await.unwrap(),
        (0, now),
        "no window yet"
    );
    s.limits.clear(&key).await.unwrap();
    assert_eq!(s.limits.count(&key, now + MIN + 1).await.unwrap().0, 0);
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
    s.mail.dead_letter(&again.id, "gave up", now).await.unwrap();
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

pub async fn dead_letters_are_purged_after_their_keep_time(s: Stores) {
    let now = now_ms() + 2 * 365 * DAY;
    let mut ids = Vec::new();
    for (i, died) in [now - 3 * DAY, now - DAY, now].into_iter().enumerate() {
        let id = s
            .mail
            .enqueue(format!("dead-{i}").as_bytes(), now)
            .await
            .unwrap();
        s.mail.dead_letter(&id, "gave up", died).await.unwrap();
        ids.push(id);
    }
    let before = s.mail.dead_letter_count().await.unwrap();
    // Other tests may share the backend and purge too: at least ours went, and only ours
    // older than the cut.
    let purged = s.mail.purge_dead_letters(now - 2 * DAY).await.unwrap();
    assert!(purged >= 1, "{purged}");
    let after = s.mail.dead_letter_count().await.unwrap();
    assert!(after < before && after >= 2, "{before} -> {after}");
    s.mail.purge_dead_letters(now + 1).await.unwrap();
    for id in ids {
        s.mail.complete(&id).await.unwrap();
    }
}

pub async fn concurrent_right_codes_all_match_and_wrong_ones_count_exactly(s: Stores) {
    let (p, now) = (policy(), now_ms());
    let user = new_user("race");
    let email = user.email.clone();
    let (id, _) = start_registration(&s, &user, 1, now, &p).await;
    let race = |n: u8| {
        let tasks = (0..20).map(|_| {
            let (pending, email, id, p) = (s.pending.clone(), email.clone(), id.clone(), p.clone());
            tokio::spawn(async move {
                pending
                    .verify_code(
                        CodePurpose::Registration,
                        &email,
                        &id,
                        &code(n),
                        now + 1,
                        &p,
                    )
                    .await
            })
        });
        join_all(tasks)
    };
    // Twenty wrong guesses at once: exactly five are evaluated.
    let wrong: Vec<_> = race(9).await.into_iter().map(|r| r.unwrap()).collect();
    let evaluated = wrong
        .iter()
        .filter(|r| matches!(r, Err(VerifyError::Wrong { .. })))
        .count();
    assert_eq!(evaluated, 5, "{wrong:?}");
    assert!(
        wrong
            .iter()
            .all(|r| matches!(r, Err(VerifyError::Wrong { .. } | VerifyError::Exhausted)))
    );
    // Twenty right answers at once on a fresh request: all match the same payload, so the
    // user they create is one (its id is in the payload).
    let (id2, _) = start_registration(&s, &user, 2, now, &p).await;
    let tasks = (0..20).map(|_| {
        let (pending, email, id, p) = (s.pending.clone(), email.clone(), id2.clone(), p.clone());
        tokio::spawn(async move {
            pending
                .verify_code(
                    CodePurpose::Registration,
                    &email,
                    &id,
                    &code(2),
                    now + 1,
                    &p,
                )
                .await
        })
    });
    for r in join_all(tasks).await {
        let payload = r.unwrap().unwrap();
        assert!(matches!(payload, PendingPayload::Registration(ref u) if u.id == user.id));
    }
}

pub async fn concurrent_rotations_without_grace_continue_at_most_once(s: Stores) {
    let now = now_ms();
    let sess = new_session(&UserId(unique("u")), hash(30), now);
    create(&s, &sess).await;
    let sessions: Arc<dyn SessionStore> = s.sessions.clone();
    let tasks = (0..16u8).map(|i| {
        let (sessions, id) = (sessions.clone(), sess.id.clone());
        tokio::spawn(async move {
            sessions
                .rotate_refresh(&id, &hash(30), &next(100 + i, now + 60 * MIN), now + 1, 0)
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

pub async fn concurrent_rotations_inside_the_grace_window_share_one_successor(s: Stores) {
    let now = now_ms();
    let sess = new_session(&UserId(unique("u")), hash(31), now);
    create(&s, &sess).await;
    let sessions: Arc<dyn SessionStore> = s.sessions.clone();
    let tasks = (0..16u8).map(|i| {
        let (sessions, id) = (sessions.clone(), sess.id.clone());
        tokio::spawn(async move {
            sessions
                .rotate_refresh(
                    &id,
                    &hash(31),
                    &next(150 + i, now + 60 * MIN),
                    now + 1,
                    10_000,
                )
                .await
        })
    });
    let results: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    let winners: Vec<u8> = (0..16u8)
        .filter(|i| matches!(results[*i as usize], RotateOutcome::Rotated(_)))
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let successor = format!("sealed-{}", 150 + winners[0]).into_bytes();
    for r in &results {
        if let RotateOutcome::Replayed { sealed, .. } = r {
            assert_eq!(sealed, &successor, "one successor for every racer");
        } else {
            assert!(matches!(r, RotateOutcome::Rotated(_)), "{r:?}");
        }
    }
    // Exactly one live token: the winner's.
    for i in 0..16u8 {
        let r = s
            .sessions
            .rotate_refresh(
                &sess.id,
                &hash(150 + i),
                &next(200 + i, now + 60 * MIN),
                now + 2,
                10_000,
            )
            .await
            .unwrap();
        if i == winners[0] {
            assert!(matches!(r, RotateOutcome::Rotated(_)));
        } else {
            assert_eq!(
                r,
                RotateOutcome::Invalid,
                "a losing successor was never installed"
            );
        }
    }
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

pub async fn directory_reads_in_one_call_and_profiles_change_atomically(s: Stores) {
    let now = now_ms();
    let (a, b) = (new_user("da"), new_user("db"));
    for u in [&a, &b] {
        s.users.create_user(u, now).await.unwrap();
    }
    let ghost = UserId::generate();
    let mut found = s
        .users
        .find_by_ids(&[a.id.clone(), ghost, b.id.clone()])
        .await
        .unwrap();
    found.sort_by(|x, y| x.id.0.cmp(&y.id.0));
    let mut want = vec![a.id.clone(), b.id.clone()];
    want.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(found.iter().map(|u| u.id.clone()).collect::<Vec<_>>(), want);
    let upper = Username::parse(&a.username.as_str().to_uppercase()).unwrap();
    let by_name = s.users.find_by_usernames(&[upper]).await.unwrap();
    assert_eq!(by_name.len(), 1, "usernames compare case-insensitively");
    assert_eq!(by_name[0].id, a.id);
    assert!(s.users.find_by_ids(&[]).await.unwrap().is_empty());

    // Bio and avatar change; the username stays.
    let change = ProfileChange {
        bio: Some("new bio".into()),
        avatar_url: Some("https://cdn.example.com/x.png".into()),
        username: None,
    };
    let user = s
        .users
        .update_profile(&a.id, &change, now + 1, DAY)
        .await
        .unwrap();
    assert_eq!(user.profile.bio, "new bio");
    assert_eq!(user.username, a.username.as_str());
    assert_eq!(user.username_changed_at, None);
    let stored = s.users.find_by_id(&a.id).await.unwrap().unwrap();
    assert_eq!(stored.profile.avatar_url, "https://cdn.example.com/x.png");

    // A rename, then the cooldown; the same name again is no change and always allowed.
    let renamed = Username::parse(&unique("rn")).unwrap();
    let rename = |name: &Username| ProfileChange {
        username: Some(name.clone()),
        ..ProfileChange::default()
    };
    let user = s
        .users
        .update_profile(&a.id, &rename(&renamed), now + 2, DAY)
        .await
        .unwrap();
    assert_eq!(user.username, renamed.as_str());
    assert_eq!(user.username_changed_at, Some(now + 2));
    assert!(s.users.find_by_username(&renamed).await.unwrap().is_some());
    assert!(
        s.users
            .find_by_username(&a.username)
            .await
            .unwrap()
            .is_none(),
        "the old name is free"
    );
    s.users
        .update_profile(&a.id, &rename(&renamed), now + 3, DAY)
        .await
        .unwrap();
    let other = Username::parse(&unique("rn")).unwrap();
    match s
        .users
        .update_profile(&a.id, &rename(&other), now + 3, DAY)
        .await
    {
        Err(UpdateProfileError::UsernameCooldown { retry_at }) => {
            assert_eq!(retry_at, now + 2 + DAY)
        }
        other => panic!("expected the cooldown, got {other:?}"),
    }
    s.users
        .update_profile(&a.id, &rename(&other), now + 2 + DAY, DAY)
        .await
        .unwrap();
    // Taken by b (in any case), refused; unknown users are not found.
    let taken = Username::parse(&b.username.as_str().to_uppercase()).unwrap();
    assert!(matches!(
        s.users
            .update_profile(&a.id, &rename(&taken), now + 5 * DAY, DAY)
            .await,
        Err(UpdateProfileError::UsernameTaken)
    ));
    assert!(matches!(
        s.users
            .update_profile(&UserId::generate(), &change, now, DAY)
            .await,
        Err(UpdateProfileError::NotFound)
    ));
}

pub async fn two_renames_to_one_name_make_one_winner(s: Stores) {
    let now = now_ms();
    let users: Vec<NewUser> = (0..6).map(|_| new_user("race")).collect();
    for u in &users {
        s.users.create_user(u, now).await.unwrap();
    }
    let wanted = Username::parse(&unique("prize")).unwrap();
    let change = ProfileChange {
        username: Some(wanted.clone()),
        ..ProfileChange::default()
    };
    let results = join_all(users.iter().map(|u| {
        let (s, change) = (s.clone(), change.clone());
        let id = u.id.clone();
        async move { s.users.update_profile(&id, &change, now, DAY).await }
    }))
    .await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    let taken = results
        .iter()
        .filter(|r| matches!(r, Err(UpdateProfileError::UsernameTaken)))
        .count();
    assert_eq!((winners, taken), (1, 5), "{results:?}");
    let owner = s.users.find_by_username(&wanted).await.unwrap().unwrap();
    assert!(users.iter().any(|u| u.id == owner.id));
}

/// Every event after `start`, of `user` only.
async fn events_of(s: &Stores, start: &str, user: &UserId) -> Vec<Event> {
    let all = events_of_all(s, start).await;
    all.into_iter().filter(|e| e.user_id == *user).collect()
}

pub async fn every_session_and_user_change_is_in_the_event_log(s: Stores) {
    let now = now_ms();
    let start = s.events.latest_id().await.unwrap();
    let new = new_user("ev");
    let user = new.id.clone();
    s.users.create_user(&new, now).await.unwrap();
    let change = ProfileChange {
        bio: Some("b".into()),
        ..ProfileChange::default()
    };
    s.users
        .update_profile(&user, &change, now, DAY)
        .await
        .unwrap();
    s.users
        .set_password(&user, &PasswordHash("x".into()), now)
        .await
        .unwrap();
    // Two sessions under a cap of one: the first is evicted by the second.
    let first = new_session(&user, hash(1), now);
    let second = new_session(&user, hash(2), now + 1);
    s.sessions.create_session(&first, 1).await.unwrap();
    s.sessions.create_session(&second, 1).await.unwrap();
    // The second: rotated, then its old token replayed late (reuse).
    let next = NextRefresh {
        hash: hash(3),
        sealed: b"sealed".to_vec(),
        expires_at: now + 60 * MIN,
        max_lifetime_ms: 30 * 24 * 60 * 60_000,
    };
    s.sessions
        .rotate_refresh(&second.id, &hash(2), &next, now + 2, 0)
        .await
        .unwrap();
    let reused = s
        .sessions
        .rotate_refresh(&second.id, &hash(2), &next, now + 3, 0)
        .await
        .unwrap();
    assert!(matches!(reused, RotateOutcome::ReuseDetected { .. }));
    // A third by logout, a fourth and fifth by revoke_all, a sixth revoked.
    let third = new_session(&user, hash(4), now + 4);
    s.sessions.create_session(&third, 50).await.unwrap();
    s.sessions
        .revoke_by_refresh(&third.id, &hash(4), now + 5, 0)
        .await
        .unwrap()
        .unwrap();
    let fourth = new_session(&user, hash(5), now + 6);
    let fifth = new_session(&user, hash(6), now + 6);
    s.sessions.create_session(&fourth, 50).await.unwrap();
    s.sessions.create_session(&fifth, 50).await.unwrap();
    let ended = s
        .sessions
        .revoke_all(&user, Some(&fifth.id), RevokeReason::PasswordReset, now + 7)
        .await
        .unwrap();
    assert_eq!(ended, 1);
    assert!(
        s.sessions
            .revoke_session(&fifth.id, &user, RevokeReason::Revoked, now + 8)
            .await
            .unwrap()
    );

    let created = |sid: &SessionId| EventKind::SessionCreated {
        session_id: sid.clone(),
    };
    let revoked = |sid: &SessionId, reason| EventKind::SessionRevoked {
        session_id: sid.clone(),
        reason,
    };
    let kinds: Vec<EventKind> = events_of(&s, &start, &user)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::UserCreated,
            EventKind::UserUpdated {
                fields: vec!["bio".into()]
            },
            EventKind::PasswordChanged,
            created(&first.id),
            revoked(&first.id, RevokeReason::Evicted),
            created(&second.id),
            revoked(&second.id, RevokeReason::ReuseDetected),
            created(&third.id),
            revoked(&third.id, RevokeReason::Logout),
            created(&fourth.id),
            created(&fifth.id),
            revoked(&fourth.id, RevokeReason::PasswordReset),
            revoked(&fifth.id, RevokeReason::Revoked),
        ]
    );
}

pub async fn the_event_log_wakes_readers_and_reports_what_it_dropped(s: Stores) {
    let start = s.events.latest_id().await.unwrap();
    let user = UserId(unique("w"));
    // A reader waiting on an empty log is woken by the next event.
    let reader = {
        let (events, start) = (s.events.clone(), start.clone());
        tokio::spawn(async move {
            events
                .read_after(&start, 10, std::time::Duration::from_secs(20))
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let session = new_session(&user, hash(9), now_ms());
    s.sessions.create_session(&session, 50).await.unwrap();
    let woke = tokio::time::timeout(std::time::Duration::from_secs(10), reader)
        .await
        .expect("the reader was woken")
        .unwrap()
        .unwrap();
    assert_eq!(woke.len(), 1);
    assert_eq!(
        woke[0].kind,
        EventKind::SessionCreated {
            session_id: session.id.clone()
        }
    );
    // Nothing new: an empty answer after the wait.
    let none = s
        .events
        .read_after(&woke[0].id, 10, std::time::Duration::from_millis(50))
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(matches!(
        s.events
            .read_after("not an id", 10, std::time::Duration::ZERO)
            .await,
        Err(ReadEventsError::InvalidId)
    ));
    // The retention drops it: a reader from before it is told so; one from after is not.
    s.events
        .append(&user, &EventKind::UserCreated, now_ms())
        .await
        .unwrap();
    let latest = s.events.latest_id().await.unwrap();
    s.events.trim(now_ms() + 60_000, 1_000_000).await.unwrap();
    assert!(matches!(
        s.events
            .read_after(&start, 10, std::time::Duration::ZERO)
            .await,
        Err(ReadEventsError::Expired)
    ));
    assert!(
        s.events
            .read_after(&latest, 10, std::time::Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn presence_is_derived_from_heartbeats_and_ends_with_sessions(s: Stores) {
    let now = now_ms();
    let ttl = 90_000;
    let (user, other) = (UserId(unique("p")), UserId(unique("q")));
    let start = s.events.latest_id().await.unwrap();
    let phone = new_session(&user, hash(1), now);
    let laptop = new_session(&user, hash(2), now);
    for sess in [&phone, &laptop] {
        create(&s, sess).await;
    }
    // Only a live session of this user may heartbeat.
    for (who, sid) in [(&other, &phone.id), (&user, &SessionId::generate())] {
        assert!(matches!(
            s.presence
                .heartbeat(who, sid, UserStatus::Online, now, ttl)
                .await,
            Err(HeartbeatError::SessionEnded)
        ));
    }
    let view = |status, last_seen: i64| PresenceView {
        user_id: user.clone(),
        status,
        last_seen: Some(last_seen),
    };
    let beat = s
        .presence
        .heartbeat(&user, &phone.id, UserStatus::Away, now, ttl)
        .await
        .unwrap();
    assert_eq!(
        (beat.presence, beat.changed),
        (view(UserStatus::Away, now), true)
    );
    let beat = s
        .presence
        .heartbeat(&user, &laptop.id, UserStatus::Online, now + 1, ttl)
        .await
        .unwrap();
    assert_eq!(
        (beat.presence, beat.changed),
        (view(UserStatus::Online, now + 1), true)
    );
    let beat = s
        .presence
        .heartbeat(&user, &laptop.id, UserStatus::Online, now + 2, ttl)
        .await
        .unwrap();
    assert!(
        !beat.changed,
        "a heartbeat that changes nothing writes no event"
    );
    // Read in one call, in order, with a user never seen.
    let views = s
        .presence
        .get_presence(&[other.clone(), user.clone()], now + 3)
        .await
        .unwrap();
    assert_eq!(
        views[0],
        PresenceView {
            user_id: other.clone(),
            status: UserStatus::Offline,
            last_seen: None
        }
    );
    assert_eq!(views[1], view(UserStatus::Online, now + 2));
    // The laptop logs out: the phone (away) remains.
    s.sessions
        .revoke_by_refresh(&laptop.id, &hash(2), now + 10, 0)
        .await
        .unwrap()
        .unwrap();
    let views = s
        .presence
        .get_presence(std::slice::from_ref(&user), now + 11)
        .await
        .unwrap();
    assert_eq!(
        views[0],
        view(UserStatus::Away, now + 10),
        "last seen at the logout"
    );
    // Derived at read time: past the phone's TTL the user is offline even before a sweep.
    let later = now + ttl + 5;
    let views = s
        .presence
        .get_presence(std::slice::from_ref(&user), later)
        .await
        .unwrap();
    assert_eq!(views[0].status, UserStatus::Offline);
    // The sweep reports the transition once, keeping the last heartbeat as last seen.
    let swept = s.presence.expire_presence(later).await.unwrap();
    assert_eq!(
        swept.iter().filter(|v| v.user_id == user).count(),
        1,
        "{swept:?}"
    );
    let again = s.presence.expire_presence(later + 1).await.unwrap();
    assert!(again.iter().all(|v| v.user_id != user), "{again:?}");
    let views = s
        .presence
        .get_presence(std::slice::from_ref(&user), later)
        .await
        .unwrap();
    assert_eq!(views[0], view(UserStatus::Offline, now + 10));
    let kinds: Vec<EventKind> = events_of(&s, &start, &user)
        .await
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::PresenceChanged { .. }))
        .map(|e| e.kind)
        .collect();
    let changed = |status| EventKind::PresenceChanged { status };
    assert_eq!(
        kinds,
        [
            changed(UserStatus::Away),
            changed(UserStatus::Online),
            changed(UserStatus::Away),
            changed(UserStatus::Offline)
        ]
    );
}

pub async fn second_factors_are_per_user_and_each_step_and_code_counts_once(s: Stores) {
    let now = now_ms();
    let (ana, bob) = (new_user("mfa"), new_user("mfb"));
    for u in [&ana, &bob] {
        s.users.create_user(u, now).await.unwrap();
    }
    let start = s.events.latest_id().await.unwrap();
    let f = &s.factors;
    assert_eq!(
        f.factor_summary(&ana.id).await.unwrap(),
        FactorSummary::default()
    );
    assert_eq!(f.totp(&ana.id).await.unwrap(), None);
    assert!(
        !f.use_totp_step(&ana.id, 1).await.unwrap(),
        "no factor, no step"
    );
    assert!(!f.replace_recovery_codes(&ana.id, &[code(1)]).await.unwrap());
    assert!(!f.disable_totp(&ana.id, now).await.unwrap());

    let factor = TotpFactor {
        sealed_secret: vec![7, 8, 9],
        last_step: 100,
        enabled_at: now,
    };
    assert!(
        f.enable_totp(&ana.id, &factor, &[code(1), code(2)])
            .await
            .unwrap()
    );
    let other = TotpFactor {
        last_step: 0,
        ..factor.clone()
    };
    assert!(
        !f.enable_totp(&ana.id, &other, &[code(5)]).await.unwrap(),
        "on already"
    );
    assert_eq!(f.totp(&ana.id).await.unwrap(), Some(factor.clone()));
    assert_eq!(
        f.factor_summary(&ana.id).await.unwrap(),
        FactorSummary {
            totp: true,
            recovery_codes: 2,
            passkeys: 0,
        }
    );
    assert_eq!(
        f.factor_summary(&bob.id).await.unwrap(),
        FactorSummary::default()
    );

    // Each step once, and nothing older after a newer one.
    assert!(!f.use_totp_step(&ana.id, 100).await.unwrap());
    assert!(!f.use_totp_step(&ana.id, 99).await.unwrap());
    assert!(f.use_totp_step(&ana.id, 101).await.unwrap());
    assert!(!f.use_totp_step(&ana.id, 101).await.unwrap());
    assert!(!f.use_totp_step(&bob.id, 500).await.unwrap());
    let racing = join_all((0..8).map(|_| f.use_totp_step(&ana.id, 200))).await;
    assert_eq!(
        racing.into_iter().filter(|r| *r.as_ref().unwrap()).count(),
        1
    );
    assert_eq!(f.totp(&ana.id).await.unwrap().unwrap().last_step, 200);

    // Recovery codes: each once, only its user's.
    assert!(!f.use_recovery_code(&bob.id, &code(1)).await.unwrap());
    assert!(f.use_recovery_code(&ana.id, &code(1)).await.unwrap());
    assert!(!f.use_recovery_code(&ana.id, &code(1)).await.unwrap());
    assert!(!f.use_recovery_code(&ana.id, &code(9)).await.unwrap());
    assert!(
        f.replace_recovery_codes(&ana.id, &[code(3), code(4)])
            .await
            .unwrap()
    );
    assert!(
        !f.use_recovery_code(&ana.id, &code(2)).await.unwrap(),
        "replaced"
    );
    let three = code(3);
    let racing = join_all((0..8).map(|_| f.use_recovery_code(&ana.id, &three))).await;
    assert_eq!(
        racing.into_iter().filter(|r| *r.as_ref().unwrap()).count(),
        1
    );
    assert_eq!(f.factor_summary(&ana.id).await.unwrap().recovery_codes, 1);

    assert!(f.disable_totp(&ana.id, now + 1).await.unwrap());
    assert!(!f.disable_totp(&ana.id, now + 2).await.unwrap());
    assert_eq!(
        f.factor_summary(&ana.id).await.unwrap(),
        FactorSummary::default()
    );
    assert!(
        !f.use_recovery_code(&ana.id, &code(4)).await.unwrap(),
        "gone with TOTP"
    );
    // On again, from scratch.
    assert!(f.enable_totp(&ana.id, &other, &[code(6)]).await.unwrap());
    assert!(f.use_totp_step(&ana.id, 1).await.unwrap());

    let kinds: Vec<_> = events_of(&s, &start, &ana.id)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect();
    let totp = AuthMethod::Totp;
    assert_eq!(
        kinds,
        [
            EventKind::FactorEnabled { factor: totp },
            EventKind::FactorDisabled { factor: totp },
            EventKind::FactorEnabled { factor: totp },
        ]
    );
}

pub async fn passkeys_are_capped_per_user_and_each_counter_counts_once(s: Stores) {
    let now = now_ms();
    let (ana, bob) = (new_user("pka"), new_user("pkb"));
    for u in [&ana, &bob] {
        s.users.create_user(u, now).await.unwrap();
    }
    let start = s.events.latest_id().await.unwrap();
    let f = &s.factors;
    let key = |id: &str, counter: u32| PasskeyRecord {
        id: id.into(),
        name: format!("key {id}"),
        credential: format!("{{\"id\":\"{id}\"}}"),
        counter,
        backed_up: false,
        created_at: now,
        last_used_at: None,
    };
    assert!(f.passkeys(&ana.id).await.unwrap().is_empty());
    assert!(f.add_passkey(&ana.id, &key("k1", 0), 2).await.unwrap());
    assert!(
        !f.add_passkey(&ana.id, &key("k1", 5), 2).await.unwrap(),
        "one id once"
    );
    assert!(f.add_passkey(&ana.id, &key("k2", 7), 2).await.unwrap());
    assert!(
        !f.add_passkey(&ana.id, &key("k3", 0), 2).await.unwrap(),
        "the cap"
    );
    assert!(
        f.add_passkey(&bob.id, &key("k1", 0), 2).await.unwrap(),
        "ids are per user"
    );
    let listed = f.passkeys(&ana.id).await.unwrap();
    assert_eq!(listed, [key("k1", 0), key("k2", 7)]);
    assert_eq!(f.factor_summary(&ana.id).await.unwrap().passkeys, 2);
    assert!(!f.factor_summary(&ana.id).await.unwrap().any());

    let used = |id: &'static str, counter: u32, at: i64| PasskeyUse {
        id,
        credential: "{\"used\":true}",
        counter,
        backed_up: true,
        at,
    };
    // A counter only goes up; an authenticator without one (0) is taken each time.
    assert!(
        !f.use_passkey(&ana.id, &used("k2", 7, now + 1))
            .await
            .unwrap()
    );
    assert!(
        !f.use_passkey(&ana.id, &used("k2", 6, now + 1))
            .await
            .unwrap()
    );
    assert!(
        f.use_passkey(&ana.id, &used("k2", 8, now + 2))
            .await
            .unwrap()
    );
    assert!(
        f.use_passkey(&ana.id, &used("k1", 0, now + 3))
            .await
            .unwrap()
    );
    assert!(
        f.use_passkey(&ana.id, &used("k1", 0, now + 4))
            .await
            .unwrap()
    );
    assert!(
        f.use_passkey(&ana.id, &used("k1", 3, now + 5))
            .await
            .unwrap()
    );
    assert!(
        !f.use_passkey(&ana.id, &used("k1", 0, now + 6))
            .await
            .unwrap(),
        "no counter after a counter"
    );
    assert!(!f.use_passkey(&ana.id, &used("k9", 50, now)).await.unwrap());
    let twenty = used("k2", 20, now + 7);
    let racing = join_all((0..8).map(|_| f.use_passkey(&ana.id, &twenty))).await;
    assert_eq!(
        racing.into_iter().filter(|r| *r.as_ref().unwrap()).count(),
        1
    );
    let k2 = f.passkeys(&ana.id).await.unwrap().remove(1);
    assert_eq!(
        (
            k2.counter,
            k2.backed_up,
            k2.last_used_at,
            k2.credential.as_str()
        ),
        (20, true, Some(now + 7), "{\"used\":true}")
    );
    assert_eq!(
        f.passkeys(&bob.id).await.unwrap(),
        [key("k1", 0)],
        "bob's is untouched"
    );

    assert!(!f.delete_passkey(&bob.id, "k2", now).await.unwrap());
    assert!(f.delete_passkey(&ana.id, "k2", now + 8).await.unwrap());
    assert!(!f.delete_passkey(&ana.id, "k2", now + 9).await.unwrap());
    assert!(f.add_passkey(&ana.id, &key("k3", 0), 2).await.unwrap());
    // Racing adds never pass the cap.
    let (bob_id, key) = (&bob.id, &key);
    let racing = join_all(
        (0..6).map(|i| async move { f.add_passkey(bob_id, &key(&format!("r{i}"), 0), 3).await }),
    )
    .await;
    assert_eq!(
        racing.into_iter().filter(|r| *r.as_ref().unwrap()).count(),
        2
    );
    assert_eq!(f.passkeys(&bob.id).await.unwrap().len(), 3);

    let kinds: Vec<_> = events_of(&s, &start, &ana.id)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect();
    let passkey = AuthMethod::Passkey;
    assert_eq!(
        kinds,
        [
            EventKind::FactorEnabled { factor: passkey },
            EventKind::FactorEnabled { factor: passkey },
            EventKind::FactorDisabled { factor: passkey },
            EventKind::FactorEnabled { factor: passkey },
        ]
    );
}

pub async fn tickets_are_taken_once_and_expire(s: Stores) {
    let t = &s.tickets;
    let id = unique("ticket");
    let now = now_ms();
    let (mfa, enroll) = (TicketKind::MfaChallenge, TicketKind::TotpEnrollment);
    assert_eq!(t.get_ticket(mfa, &id, now).await.unwrap(), None);
    t.put_ticket(mfa, &id, "one", now + MIN, now).await.unwrap();
    assert_eq!(
        t.get_ticket(mfa, &id, now).await.unwrap().as_deref(),
        Some("one")
    );
    assert_eq!(
        t.get_ticket(enroll, &id, now).await.unwrap(),
        None,
        "kinds do not mix"
    );
    t.put_ticket(mfa, &id, "two", now + MIN, now).await.unwrap();
    assert_eq!(
        t.get_ticket(mfa, &id, now).await.unwrap().as_deref(),
        Some("two")
    );
    let taken = join_all((0..8).map(|_| t.take_ticket(mfa, &id, now))).await;
    let taken: Vec<_> = taken.into_iter().filter_map(|r| r.unwrap()).collect();
    assert_eq!(taken, ["two"], "taken once");
    assert_eq!(t.get_ticket(mfa, &id, now).await.unwrap(), None);

    // Expiry, by the real clock (Redis expires keys by its own).
    let now = now_ms();
    t.put_ticket(enroll, &id, "short", now + 50, now)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    let later = now_ms();
    assert_eq!(t.get_ticket(enroll, &id, later).await.unwrap(), None);
    assert_eq!(t.take_ticket(enroll, &id, later).await.unwrap(), None);
}

pub async fn sessions_remember_how_they_signed_in(s: Stores) {
    let now = now_ms();
    let user = UserId::generate();
    let mut session = new_session(&user, hash(1), now);
    session.sign_in = SignIn {
        first: AuthMethod::EmailCode,
        second: Some(AuthMethod::RecoveryCode),
    };
    create(&s, &session).await;
    let plain = new_session(&user, hash(2), now + 1);
    create(&s, &plain).await;
    let got = s
        .sessions
        .get_session(&session.id, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.sign_in, Some(session.sign_in));
    let listed = s.sessions.list_sessions(&user, now).await.unwrap();
    let ways: Vec<_> = listed.iter().map(|r| (r.id.clone(), r.sign_in)).collect();
    assert_eq!(
        ways,
        [
            (plain.id.clone(), Some(plain.sign_in)),
            (session.id.clone(), Some(session.sign_in)),
        ]
    );
}

/// SESSION_IDLE_TIMEOUT and SESSION_MAX_LIFETIME, as the rotation enforces them: a rotation never
/// extends a session past its start plus the maximum lifetime; a token (current or previous) of
/// a session past either limit finds it expired and ends it, with its event; anyone else's
/// token ends nothing; a session that timed out is not counted as ended by a later revocation.
pub async fn sessions_time_out_when_idle_and_at_their_maximum_lifetime(s: Stores) {
    let now = now_ms();
    let user = UserId(unique("u"));
    let start = s.events.latest_id().await.unwrap();
    let limited = |n: u8, expires_at: i64, max_lifetime_ms: i64| NextRefresh {
        max_lifetime_ms,
        ..next(n, expires_at)
    };
    let rotate = |id: SessionId, presented: u8, next: NextRefresh, at: i64| {
        let sessions = s.sessions.clone();
        async move {
            sessions
                .rotate_refresh(&id, &hash(presented), &next, at, 0)
                .await
                .unwrap()
        }
    };

    // The maximum lifetime caps the expiry a rotation gives.
    let capped = new_session(&user, hash(1), now);
    create(&s, &capped).await;
    let r = rotate(
        capped.id.clone(),
        1,
        limited(2, now + 120 * MIN, 90 * MIN),
        now + MIN,
    )
    .await;
    let RotateOutcome::Rotated(rec) = r else {
        panic!("{r:?}")
    };
    assert_eq!(
        rec.expires_at,
        now + 90 * MIN,
        "capped at start + max lifetime"
    );
    // Past the lifetime (here lowered to 20 minutes, while the idle deadline is later), even
    // the current token finds the session expired; it ends.
    let r = rotate(
        capped.id.clone(),
        2,
        limited(3, now + 120 * MIN, 20 * MIN),
        now + 30 * MIN,
    );
    assert_eq!(
        r.await,
        RotateOutcome::Expired {
            user_id: user.clone()
        }
    );
    assert!(
        s.sessions
            .get_session(&capped.id, now + 30 * MIN)
            .await
            .unwrap()
            .is_none()
    );
    let r = rotate(
        capped.id.clone(),
        2,
        limited(3, now + 120 * MIN, 20 * MIN),
        now + 31 * MIN,
    );
    assert_eq!(
        r.await,
        RotateOutcome::Invalid,
        "it ended: nothing to answer any more"
    );

    // Idle: past its expiry, a stranger's token ends nothing and the previous token, like the
    // current one, finds the session expired.
    let idle = new_session(&user, hash(10), now);
    create(&s, &idle).await;
    let r = rotate(
        idle.id.clone(),
        10,
        limited(11, now + 60 * MIN, DAY),
        now + MIN,
    )
    .await;
    assert!(matches!(r, RotateOutcome::Rotated(_)), "{r:?}");
    let after = now + 62 * MIN;
    assert_eq!(
        rotate(
            idle.id.clone(),
            99,
            limited(12, after + 60 * MIN, DAY),
            after
        )
        .await,
        RotateOutcome::Invalid
    );
    assert_eq!(
        rotate(
            idle.id.clone(),
            10,
            limited(12, after + 60 * MIN, DAY),
            after
        )
        .await,
        RotateOutcome::Expired {
            user_id: user.clone()
        }
    );
    assert_eq!(
        rotate(
            idle.id.clone(),
            11,
            limited(12, after + 60 * MIN, DAY),
            after
        )
        .await,
        RotateOutcome::Invalid,
        "ended by the first"
    );

    // A session that timed out and nobody refreshed: logout, revocation and the list skip it.
    let lapsed = new_session(&user, hash(20), now);
    create(&s, &lapsed).await;
    assert!(
        s.sessions
            .revoke_by_refresh(&lapsed.id, &hash(20), after, 0)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.sessions
            .list_sessions(&user, after)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.sessions
            .revoke_all(&user, None, RevokeReason::LogoutAll, after)
            .await
            .unwrap(),
        0,
        "a session that timed out is not ended again"
    );

    let expired: Vec<SessionId> = events_of(&s, &start, &user)
        .await
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::SessionRevoked {
                session_id,
                reason: RevokeReason::Expired,
            } => Some(session_id),
            _ => None,
        })
        .collect();
    assert_eq!(expired, vec![capped.id.clone(), idle.id.clone()]);
}

/// set_email: only to a free address (of two changes racing for one, one wins), the old one
/// free after; delete_user: the user and their factors go, the email and username are free.
pub async fn an_email_changes_only_to_a_free_address_and_a_user_is_deleted_whole(s: Stores) {
    let now = now_ms();
    let start = s.events.latest_id().await.unwrap();
    let (a, b) = (new_user("ema"), new_user("emb"));
    s.users.create_user(&a, now).await.unwrap();
    s.users.create_user(&b, now).await.unwrap();
    assert!(matches!(
        s.users.set_email(&a.id, &b.email, now).await,
        Err(SetEmailError::EmailTaken)
    ));
    assert!(matches!(
        s.users.set_email(&UserId::generate(), &b.email, now).await,
        Err(SetEmailError::NotFound)
    ));
    // Two changes racing for one free address: one wins.
    let contested = Email::parse(&format!("{}@example.com", unique("contested"))).unwrap();
    let (ra, rb) = tokio::join!(
        s.users.set_email(&a.id, &contested, now + 1),
        s.users.set_email(&b.id, &contested, now + 1),
    );
    assert_eq!(ra.is_ok() as u8 + rb.is_ok() as u8, 1, "{ra:?} {rb:?}");
    let (winner, loser) = if ra.is_ok() { (&a, &b) } else { (&b, &a) };
    let found = s.users.find_by_email(&contested).await.unwrap().unwrap();
    assert_eq!(found.id, winner.id);
    assert!(
        s.users
            .find_by_email(&winner.email)
            .await
            .unwrap()
            .is_none(),
        "the old one is free"
    );
    assert_eq!(
        s.users.find_by_id(&loser.id).await.unwrap().unwrap().email,
        loser.email.as_str()
    );

    // Deleted whole: the factors go with the user; the username and email are free.
    let factor = TotpFactor {
        sealed_secret: vec![1, 2, 3],
        last_step: 0,
        enabled_at: now,
    };
    assert!(
        s.factors
            .enable_totp(&winner.id, &factor, &[code(1)])
            .await
            .unwrap()
    );
    assert!(s.users.delete_user(&winner.id, now + 2).await.unwrap());
    assert!(
        !s.users.delete_user(&winner.id, now + 3).await.unwrap(),
        "once"
    );
    assert!(s.users.find_by_id(&winner.id).await.unwrap().is_none());
    assert!(s.users.find_by_email(&contested).await.unwrap().is_none());
    assert!(s.factors.totp(&winner.id).await.unwrap().is_none());
    assert!(!s.factors.factor_summary(&winner.id).await.unwrap().any());
    let again = NewUser {
        id: UserId::generate(),
        email: contested.clone(),
        ..winner.clone()
    };
    s.users.create_user(&again, now + 4).await.unwrap();

    let kinds: Vec<(UserId, EventKind)> = events_of_all(&s, &start)
        .await
        .into_iter()
        .filter(|e| e.user_id == a.id || e.user_id == b.id)
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::UserUpdated { .. } | EventKind::UserDeleted
            )
        })
        .map(|e| (e.user_id, e.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (
                winner.id.clone(),
                EventKind::UserUpdated {
                    fields: vec!["email".into()]
                }
            ),
            (winner.id.clone(), EventKind::UserDeleted),
        ]
    );
}

/// Every event after `start`.
async fn events_of_all(s: &Stores, start: &str) -> Vec<Event> {
    let mut all = Vec::new();
    let mut after = start.to_owned();
    loop {
        let batch = s
            .events
            .read_after(&after, 100, std::time::Duration::ZERO)
            .await
            .unwrap();
        let Some(last) = batch.last() else { break };
        after = last.id.clone();
        all.extend(batch);
    }
    all
}

/// The security log: newest first a page at a time (ids are UUID v7), per user, filtered by
/// kind, trimmed by age.
pub async fn the_security_log_pages_newest_first_filters_and_trims(s: Stores) {
    let now = now_ms();
    let (user, other) = (UserId::generate(), UserId::generate());
    let kinds = [
        SecurityKind::SignIn,
        SecurityKind::SignInFailed,
        SecurityKind::SignIn,
        SecurityKind::PasswordChanged,
        SecurityKind::SessionsEnded,
    ];
    let mut ids = Vec::new();
    for (i, kind) in kinds.into_iter().enumerate() {
        let event = SecurityEvent {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: user.clone(),
            at: now - 10_000 + i as i64 * 1000,
            kind,
            detail: format!("d{i}"),
            ip: "203.0.113.7".into(),
            user_agent: "Firefox/130".into(),
            session_id: (i == 0).then(SessionId::generate),
        };
        s.security.record_security_event(&event).await.unwrap();
        ids.push(event.id);
    }
    let theirs = SecurityEvent {
        id: uuid::Uuid::now_v7().to_string(),
        user_id: other.clone(),
        at: now,
        kind: SecurityKind::SignIn,
        detail: String::new(),
        ip: String::new(),
        user_agent: String::new(),
        session_id: None,
    };
    s.security.record_security_event(&theirs).await.unwrap();

    let page = |before: Option<String>, limit: usize, kinds: Vec<SecurityKind>| {
        let (log, user) = (s.security.clone(), user.clone());
        async move {
            log.security_events(&user, before.as_deref(), limit, &kinds)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        }
    };
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(page(None, 2, vec![]).await, newest_first[..2]);
    assert_eq!(
        page(Some(newest_first[1].clone()), 2, vec![]).await,
        newest_first[2..4]
    );
    assert_eq!(
        page(Some(newest_first[3].clone()), 2, vec![]).await,
        newest_first[4..]
    );
    assert_eq!(
        page(None, 10, vec![SecurityKind::SignIn]).await,
        vec![ids[2].clone(), ids[0].clone()]
    );
    let first = s
        .security
        .security_events(&user, None, 10, &[])
        .await
        .unwrap();
    let oldest = first.last().unwrap();
    assert_eq!(
        (
            oldest.detail.as_str(),
            oldest.ip.as_str(),
            oldest.user_agent.as_str()
        ),
        ("d0", "203.0.113.7", "Firefox/130")
    );
    assert!(oldest.session_id.is_some() && first[0].session_id.is_none());

    // Trimming by age removes the three oldest of this user (and nothing newer).
    assert!(s.security.trim_security_events(now - 7_500).await.unwrap() >= 3);
    assert_eq!(page(None, 10, vec![]).await, newest_first[..2]);
    assert_eq!(
        s.security
            .security_events(&other, None, 10, &[])
            .await
            .unwrap()
            .len(),
        1
    );
}

/// The signing-key ring: empty at first, written whole, and replaced only by a writer that
/// names the version it read, so of racing instances exactly one makes the next key.
pub async fn the_signing_key_ring_is_replaced_only_at_the_version_read(s: Stores) {
    let key = |kid: &str, signs_from| StoredSigningKey {
        kid: kid.into(),
        sealed: format!("sealed-{kid}"),
        created_at: 1,
        signs_from,
    };
    assert_eq!(
        s.keys.signing_key_ring().await.unwrap(),
        SigningKeyRing::default()
    );
    // Ten instances start together on an empty ring: one first key.
    let writes = join_all((0..10).map(|i| {
        let (keys, first) = (s.keys.clone(), [key(&format!("first-{i}"), 10)]);
        async move { keys.replace_signing_key_ring(0, &first).await.unwrap() }
    }))
    .await;
    assert_eq!(writes.iter().filter(|w| **w).count(), 1, "{writes:?}");
    let ring = s.keys.signing_key_ring().await.unwrap();
    assert_eq!(ring.version, 1);
    let winner = ring.keys[0].kid.clone();
    assert_eq!(ring.keys, [key(&winner, 10)]);
    // A writer that read an older version changes nothing.
    assert!(
        !s.keys
            .replace_signing_key_ring(0, &[key("late", 5)])
            .await
            .unwrap()
    );
    assert!(
        !s.keys
            .replace_signing_key_ring(7, &[key("late", 5)])
            .await
            .unwrap()
    );
    // Ten racing to add the next key at version 1: one wins, and its ring is what is read.
    let writes = join_all((0..10).map(|i| {
        let keys = s.keys.clone();
        let next = vec![key(&winner, 10), key(&format!("next-{i}"), 20)];
        async move { keys.replace_signing_key_ring(1, &next).await.unwrap() }
    }))
    .await;
    assert_eq!(writes.iter().filter(|w| **w).count(), 1, "{writes:?}");
    let ring = s.keys.signing_key_ring().await.unwrap();
    assert_eq!(ring.version, 2);
    assert_eq!(ring.keys.len(), 2);
    assert!(ring.keys[1].kid.starts_with("next-"));
    // Retiring is a write like any other.
    assert!(
        s.keys
            .replace_signing_key_ring(2, &ring.keys[1..])
            .await
            .unwrap()
    );
    let ring = s.keys.signing_key_ring().await.unwrap();
    assert_eq!((ring.version, ring.keys.len()), (3, 1));
}

/// A backend's one-round-trip read for GetCurrentUser answers what the four stores answer
/// apart: a live session or none, the user or none, the presence and the second factors.
pub async fn the_current_user_read_agrees_with_the_four_stores(s: Stores) {
    let reader = s
        .current_user
        .clone()
        .expect("a backend with GetCurrentUser's one-round-trip read");
    let now = now_ms();
    let user = new_user("cu");
    s.users.create_user(&user, now).await.unwrap();
    let phone = new_session(&user.id, hash(1), now);
    let laptop = new_session(&user.id, hash(2), now);
    for sess in [&phone, &laptop] {
        create(&s, sess).await;
    }
    s.presence
        .heartbeat(&user.id, &phone.id, UserStatus::Away, now, 90_000)
        .await
        .unwrap();
    let factor = TotpFactor {
        sealed_secret: vec![1, 2, 3],
        last_step: 0,
        enabled_at: now,
    };
    assert!(
        s.factors
            .enable_totp(&user.id, &factor, &[code(1), code(2)])
            .await
            .unwrap()
    );
    let at = now + 1;
    let apart = |session: SessionId| {
        let (s, id) = (s.clone(), user.id.clone());
        async move {
            (
                s.sessions.get_session(&session, at).await.unwrap(),
                format!("{:?}", s.users.find_by_id(&id).await.unwrap()),
                s.presence
                    .get_presence(std::slice::from_ref(&id), at)
                    .await
                    .unwrap(),
                s.factors.factor_summary(&id).await.unwrap(),
            )
        }
    };
    let read = reader.current_user(&phone.id, &user.id, at).await.unwrap();
    let (session, found, presence, factors) = apart(phone.id.clone()).await;
    assert_eq!(read.session, session);
    assert_eq!(read.session.as_ref().map(|r| &r.id), Some(&phone.id));
    assert_eq!(format!("{:?}", read.user), found);
    assert!(read.user.is_some());
    assert_eq!(vec![read.presence.clone()], presence);
    assert_eq!(read.presence.status, UserStatus::Away);
    assert_eq!(read.factors, factors);
    assert_eq!((read.factors.totp, read.factors.recovery_codes), (true, 2));

    // An ended session reads as none; the user is still read (the flow refuses the token).
    assert!(
        s.sessions
            .revoke_session(&phone.id, &user.id, RevokeReason::Revoked, now)
            .await
            .unwrap()
    );
    let read = reader.current_user(&phone.id, &user.id, at).await.unwrap();
    assert_eq!(read.session, None);
    assert!(read.user.is_some());
    // So does an expired one, and the other device's is its own.
    let past_expiry = laptop.expires_at + 1;
    let read = reader
        .current_user(&laptop.id, &user.id, past_expiry)
        .await
        .unwrap();
    assert_eq!(read.session, None);
    let read = reader.current_user(&laptop.id, &user.id, at).await.unwrap();
    assert_eq!(read.session.map(|r| r.id), Some(laptop.id.clone()));

    // Nobody: no session, no user, offline, no factors.
    let nobody = UserId::generate();
    let read = reader
        .current_user(&SessionId::generate(), &nobody, at)
        .await
        .unwrap();
    assert_eq!(read.session, None);
    assert!(read.user.is_none());
    assert_eq!(read.presence.user_id, nobody);
    assert_eq!(read.presence.status, UserStatus::Offline);
    assert_eq!(read.factors, FactorSummary::default());
}
