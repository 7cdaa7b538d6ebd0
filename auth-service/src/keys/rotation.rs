//! The automatic rotation of signing keys (JWT_KEY_ROTATION_INTERVAL). Every instance runs the
//! same small loop against the shared ring ([`KeyRingStore`]): read it, work out what is due
//! ([`plan`]), and write the change only if nobody wrote since it read (compare and set). So
//! whichever instance is first makes the next key, and every instance installs the same keys.
//!
//! - A new key is made `prepublish` before it signs, so every instance and every verifier that
//!   refetches the JWKS more often than that knows it before its first token.
//! - It signs from its `signs_from` time on, read from the ring, so instances switch together.
//! - An older key is dropped once every token it signed has expired (plus a margin for clocks
//!   that differ): it stops signing when its successor starts, so after the successor's start
//!   plus the access-token life.
//!
//! Keys are stored sealed with AUTH_SECRET to their key id and signing time: the store's
//! contents alone never give a key, and a sealed key moved under another id, or to another
//! time, does not open.

use std::{sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tokio_util::sync::CancellationToken;

use crate::config::{KeyRotation, millis};
use crate::crypto::{AccessTokens, Sealer, SigningKey};
use crate::domain::{UnixMs, now_ms};
use crate::store::{KeyRingStore, StoreError, StoredSigningKey};

/// Longest margin kept past a key's last token for clocks that differ between instances.
const CLOCK_MARGIN: Duration = Duration::from_secs(60);

/// The ring is read four times per pre-publish time, so a new key is known everywhere long
/// before it signs, and at least this often.
const MAX_CHECK_EVERY: Duration = Duration::from_secs(60);

/// Writes lost to other instances in a row before a round gives up (the next round retries).
const MAX_CONFLICTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored key that does not open or parse: AUTH_SECRET differs from the instance that
    /// sealed it, or the ring was altered.
    #[error(
        "signing key {kid} cannot be opened (is AUTH_SECRET the same on every instance?): {why}"
    )]
    Unreadable { kid: String, why: String },
    #[error("cannot make a signing key: {0}")]
    Generate(String),
    #[error("the signing-key ring kept changing under this instance; retrying later")]
    Contended,
}

/// What a key is sealed to: its id and the time it signs from, so a stored key can be
/// neither moved under another id nor made to sign at another time.
fn seal_context(key: &StoredSigningKey) -> Vec<u8> {
    format!("{}|{}|{}", key.kid, key.signs_from, key.created_at).into_bytes()
}

/// What is due in a ring at a time.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Make a key that signs from this time.
    pub next_signs_from: Option<UnixMs>,
    /// Drop these keys (every token they signed has expired).
    pub retire: Vec<String>,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.next_signs_from.is_none() && self.retire.is_empty()
    }
}

/// The rotation's timing, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub interval_ms: i64,
    pub prepublish_ms: i64,
    /// How long after its successor starts signing a key is kept: the access-token life plus
    /// the clock margin.
    pub retire_after_ms: i64,
    /// Whether a configured key signs until the ring's first key does. Without one, the
    /// first key signs at once (nothing was signed before it for verifiers to cache).
    pub configured_signer: bool,
}

impl Schedule {
    pub fn new(rotation: KeyRotation, access_ttl: Duration, configured_signer: bool) -> Self {
        Self {
            interval_ms: millis(rotation.interval),
            prepublish_ms: millis(rotation.prepublish),
            retire_after_ms: millis(access_ttl) + millis(CLOCK_MARGIN.min(rotation.prepublish)),
            configured_signer,
        }
    }
}

/// What is due at `now` in a ring of `keys`:
/// - no key waiting to sign and the signing one `interval - prepublish` old (or none at all):
///   a next key, signing `prepublish` from now, or the signing one's `interval` after its own
///   start if that is later;
/// - keys whose successor started signing `retire_after` ago: retired.
pub fn plan(keys: &[StoredSigningKey], now: UnixMs, schedule: &Schedule) -> Plan {
    let mut starts: Vec<(UnixMs, &str)> = keys
        .iter()
        .map(|k| (k.signs_from, k.kid.as_str()))
        .collect();
    starts.sort();
    let waiting = starts.iter().any(|(at, _)| *at > now);
    let signing = starts.iter().rev().find(|(at, _)| *at <= now).map(|s| s.0);
    let next_signs_from = match (waiting, signing) {
        (true, _) => None,
        (false, None) if !schedule.configured_signer => Some(now),
        (false, None) => Some(now + schedule.prepublish_ms),
        (false, Some(since)) if now >= since + schedule.interval_ms - schedule.prepublish_ms => {
            Some((now + schedule.prepublish_ms).max(since + schedule.interval_ms))
        }
        (false, Some(_)) => None,
    };
    let retire = starts
        .windows(2)
        .filter(|pair| {
            let successor_from = pair[1].0;
            successor_from <= now && now >= successor_from + schedule.retire_after_ms
        })
        .map(|pair| pair[0].1.to_owned())
        .collect();
    Plan {
        next_signs_from,
        retire,
    }
}

/// One instance's share of the rotation: keeps its [`AccessTokens`] on the shared ring.
pub struct Rotator {
    store: Arc<dyn KeyRingStore>,
    sealer: Sealer,
    schedule: Schedule,
    check_every: Duration,
    /// The ring last installed, so an unchanged ring is not opened again (compared whole: a
    /// version alone could come back with other keys, after a database rollback).
    installed: std::sync::Mutex<Option<Vec<StoredSigningKey>>>,
}

impl Rotator {
    pub fn new(
        store: Arc<dyn KeyRingStore>,
        sealer: Sealer,
        rotation: KeyRotation,
        access_ttl: Duration,
        configured_signer: bool,
    ) -> Self {
        Self {
            store,
            sealer,
            schedule: Schedule::new(rotation, access_ttl, configured_signer),
            check_every: (rotation.prepublish / 4)
                .clamp(Duration::from_millis(100), MAX_CHECK_EVERY),
            installed: std::sync::Mutex::new(None),
        }
    }

    /// Brings the ring up to date at `now` (making or retiring keys when due, unless another
    /// instance already did) and installs its keys in `tokens`. Every stored key must open
    /// before anything is written: an instance with another AUTH_SECRET changes nothing.
    pub async fn sync(&self, tokens: &AccessTokens, now: UnixMs) -> Result<(), RotationError> {
        for _ in 0..MAX_CONFLICTS {
            let ring = self.store.signing_key_ring().await?;
            let due = plan(&ring.keys, now, &self.schedule);
            if due.is_empty() && self.is_installed(&ring.keys) {
                return Ok(());
            }
            let mut keys = self.open(&ring.keys)?;
            if due.is_empty() {
                self.install(tokens, &ring.keys, keys);
                return Ok(());
            }
            let mut stored: Vec<StoredSigningKey> = ring
                .keys
                .iter()
                .filter(|k| !due.retire.contains(&k.kid))
                .cloned()
                .collect();
            keys.retain(|(key, _)| !due.retire.iter().any(|kid| kid == key.kid()));
            if let Some(signs_from) = due.next_signs_from {
                let (record, key) = self.make_key(now, signs_from)?;
                stored.push(record);
                keys.push((key, signs_from));
            }
            if self
                .store
                .replace_signing_key_ring(ring.version, &stored)
                .await?
            {
                for kid in &due.retire {
                    tracing::info!(
                        kid,
                        "signing key retired: every token it signed has expired"
                    );
                }
                if let (Some(key), Some(at)) = (stored.last(), due.next_signs_from) {
                    tracing::info!(kid = %key.kid, signs_in_ms = at - now, "signing key made and published");
                }
                self.install(tokens, &stored, keys);
                return Ok(());
            }
            // Another instance wrote first: read what it wrote.
        }
        Err(RotationError::Contended)
    }

    fn make_key(
        &self,
        now: UnixMs,
        signs_from: UnixMs,
    ) -> Result<(StoredSigningKey, SigningKey), RotationError> {
        let der = SigningKey::generate_pkcs8().map_err(RotationError::Generate)?;
        let key = SigningKey::from_der(&der, None).map_err(RotationError::Generate)?;
        let mut record = StoredSigningKey {
            kid: key.kid().to_owned(),
            sealed: String::new(),
            created_at: now,
            signs_from,
        };
        record.sealed = URL_SAFE_NO_PAD.encode(self.sealer.seal_for(&der, &seal_context(&record)));
        Ok((record, key))
    }

    fn is_installed(&self, keys: &[StoredSigningKey]) -> bool {
        self.installed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_deref()
            == Some(keys)
    }

    /// Opens every stored key, or says which one does not open.
    fn open(
        &self,
        stored: &[StoredSigningKey],
    ) -> Result<Vec<(SigningKey, UnixMs)>, RotationError> {
        stored
            .iter()
            .map(|stored| {
                let unreadable = |why: String| RotationError::Unreadable {
                    kid: stored.kid.clone(),
                    why,
                };
                let sealed = URL_SAFE_NO_PAD
                    .decode(&stored.sealed)
                    .map_err(|e| unreadable(e.to_string()))?;
                let der = zeroize::Zeroizing::new(
                    self.sealer
                        .open_for(&sealed, &seal_context(stored))
                        .map_err(unreadable)?,
                );
                let key =
                    SigningKey::from_der(&der, Some(stored.kid.clone())).map_err(unreadable)?;
                Ok((key, stored.signs_from))
            })
            .collect()
    }

    /// Hands `keys`, opened from `stored`, to `tokens`.
    fn install(
        &self,
        tokens: &AccessTokens,
        stored: &[StoredSigningKey],
        keys: Vec<(SigningKey, UnixMs)>,
    ) {
        tokens.install_rotating(keys);
        *self
            .installed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(stored.to_vec());
    }

    /// Keeps `tokens` on the ring until `stop`. A failed round is logged and retried at the
    /// next; meanwhile the keys installed last keep working.
    pub async fn run(self, core: Arc<crate::flows::AuthCore>, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.check_every) => {}
            }
            let result = tokio::select! {
                () = stop.cancelled() => return,
                result = self.sync(&core.tokens, now_ms()) => result,
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "signing-key rotation: this round failed; the keys installed last stay in use");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    fn schedule(configured_signer: bool) -> Schedule {
        // A key a day, published an hour ahead, tokens of 15 minutes.
        Schedule::new(
            KeyRotation {
                interval: Duration::from_secs(86_400),
                prepublish: Duration::from_secs(3600),
            },
            Duration::from_secs(900),
            configured_signer,
        )
    }

    fn key(kid: &str, signs_from: UnixMs) -> StoredSigningKey {
        StoredSigningKey {
            kid: kid.into(),
            sealed: String::new(),
            created_at: 0,
            signs_from,
        }
    }

    /// Applies plans over `hours`, checking every minute: the ring at each hour, and each
    /// key's (made at, signs from).
    fn simulate(
        configured_signer: bool,
        hours: i64,
    ) -> (Vec<Vec<StoredSigningKey>>, Vec<(i64, i64)>) {
        let s = schedule(configured_signer);
        let (mut ring, mut seen, mut made) = (Vec::new(), Vec::new(), Vec::new());
        for minute in 0..hours * 60 {
            let now = 1_000_000 * S + minute * 60 * S;
            let due = plan(&ring, now, &s);
            ring.retain(|k: &StoredSigningKey| !due.retire.contains(&k.kid));
            if let Some(at) = due.next_signs_from {
                made.push((now, at));
                ring.push(key(&format!("k{}", made.len()), at));
            }
            if minute % 60 == 0 {
                seen.push(ring.clone());
            }
        }
        (seen, made)
    }

    #[test]
    fn a_first_key_signs_at_once_without_a_configured_one_and_after_prepublish_with_one() {
        let now = 5_000 * S;
        assert_eq!(plan(&[], now, &schedule(false)).next_signs_from, Some(now));
        assert_eq!(
            plan(&[], now, &schedule(true)).next_signs_from,
            Some(now + 3600 * S)
        );
    }

    #[test]
    fn the_next_key_is_published_prepublish_ahead_of_its_turn() {
        let s = schedule(false);
        let since = 10_000 * S;
        let ring = [key("a", since)];
        // Not yet: more than an hour before the day is over.
        assert_eq!(plan(&ring, since + 22 * 3600 * S, &s), Plan::default());
        // At 23 h: the next key, signing at 24 h.
        let due = plan(&ring, since + 23 * 3600 * S, &s);
        assert_eq!(due.next_signs_from, Some(since + 24 * 3600 * S));
        // Late (an instance was down): still a full hour of publication before it signs.
        let late = since + 30 * 3600 * S;
        assert_eq!(plan(&ring, late, &s).next_signs_from, Some(late + 3600 * S));
        // One waiting already: no second.
        let ring = [key("a", since), key("b", since + 24 * 3600 * S)];
        assert_eq!(plan(&ring, since + 23 * 3600 * S + S, &s), Plan::default());
    }

    #[test]
    fn a_key_is_retired_once_its_successors_start_is_a_token_life_and_a_margin_ago() {
        let s = schedule(false);
        let ring = [key("old", 0), key("new", 100_000 * S)];
        let kept_until = 100_000 * S + 900 * S + 60 * S;
        assert!(plan(&ring, kept_until - 1, &s).retire.is_empty());
        assert_eq!(plan(&ring, kept_until, &s).retire, ["old"]);
        // A waiting key retires nothing.
        assert!(plan(&ring, 99_999 * S, &s).retire.is_empty());
    }

    #[test]
    fn over_weeks_the_ring_stays_small_and_every_key_is_published_before_it_signs() {
        for configured in [false, true] {
            let (rings, made) = simulate(configured, 24 * 21);
            assert!(rings.iter().all(|ring| ring.len() <= 3), "{rings:?}");
            // One key a day (the first one extra).
            assert!(
                (21..=23).contains(&made.len()),
                "{} keys in 21 days",
                made.len()
            );
            // Each after the first is published an hour before it signs, a day after the last.
            for pair in made.windows(2) {
                let ((_, before), (at, signs_from)) = (pair[0], pair[1]);
                assert_eq!(signs_from - at, 3600 * S);
                assert_eq!(signs_from - before, 86_400 * S);
            }
            let (at, signs_from) = made[0];
            let wait = if configured { 3600 * S } else { 0 };
            assert_eq!(signs_from - at, wait);
        }
    }
}
