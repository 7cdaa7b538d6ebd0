//! argon2id password hashing ([`PasswordHasher`]) off the async runtime, on a fixed pool of
//! threads with a bounded queue. A caller is refused at once ([`HashError::Busy`]) when its
//! expected wait (the jobs ahead of it × the measured time of a hash ÷ the threads) would pass
//! `HASH_MAX_WAIT`, or when `HASH_CONCURRENCY` run and `HASH_QUEUE` wait already. Hashes are
//! standard PHC strings, and an unknown account is checked against a dummy hash so it costs
//! what a wrong password costs.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::{
        Output, ParamsString, PasswordHash as PhcString, PasswordHasher as _, Salt, SaltString,
        rand_core::OsRng,
    },
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;

use crate::domain::{Password, PasswordHash};

/// argon2id cost and the bounds of the hashing pool.
#[derive(Debug, Clone)]
pub struct HashSettings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes running at once: the number of hashing threads.
    pub concurrency: usize,
    /// Callers allowed to wait for a free thread; past that, callers are refused at once.
    pub queue: usize,
    /// The longest expected wait for a thread a caller is admitted to; past it, refused.
    pub max_wait: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every thread and every queue place is taken: answer RESOURCE_EXHAUSTED now.
    #[error("too many password hashes in progress")]
    Busy,
    #[error("password hashing failed: {0}")]
    Internal(String),
}

type Job = Box<dyn FnOnce(&Argon2<'static>, &mut Vec<Block>) + Send>;

/// Runs argon2id on a fixed set of threads of its own, fed by a bounded queue, so a burst of
/// logins can neither starve the async runtime nor pile up waiting callers without end.
/// Each thread keeps its `memory_kib` work area from one hash to the next: no 19 MiB
/// allocation (and its page faults) per hash, and memory bounded by threads × `memory_kib`
/// instead of whatever the allocator keeps after freeing such blocks on many threads.
pub struct PasswordHasher {
    jobs: mpsc::Sender<Job>,
    /// Jobs accepted and not finished (running or queued), at most `max_in_flight`.
    in_flight: Arc<AtomicUsize>,
    max_in_flight: usize,
    threads: usize,
    max_wait: Duration,
    /// The time one hash takes on a thread, in microseconds: a moving average of the last
    /// jobs (each weighs 1/8), seeded by the dummy hash made at start.
    hash_micros: Arc<AtomicU64>,
    /// A hash of a random password, verified when an account does not exist so that an
    /// unknown account and a wrong password cost the same time.
    dummy: String,
}

/// One place in the pool (running or queued), given back when the job ends or is dropped.
struct Place(Arc<AtomicUsize>);

/// A place taken ahead of its hash ([`PasswordHasher::reserve`]); dropping it gives it back.
pub struct Reservation<'a> {
    hasher: &'a PasswordHasher,
    place: Place,
}

impl Reservation<'_> {
    /// [`PasswordHasher::hash`] in the reserved place: never refused.
    pub async fn hash(self, password: &Password) -> Result<PasswordHash, HashError> {
        self.hasher.hash_in(self.place, password).await
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordHasher {
    pub fn new(settings: &HashSettings) -> Result<Self, HashError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| HashError::Internal(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let random = uuid::Uuid::new_v4().to_string();
        let salt = SaltString::generate(&mut OsRng);
        let started = Instant::now();
        let dummy = argon2
            .hash_password(random.as_bytes(), &salt)
            .map_err(|e| HashError::Internal(e.to_string()))?
            .to_string();
        let hash_micros = Arc::new(AtomicU64::new(micros(started.elapsed())));
        let (jobs, inbox) = mpsc::channel::<Job>();
        let inbox = Arc::new(Mutex::new(inbox));
        let concurrency = settings.concurrency.max(1);
        for n in 0..concurrency {
            let (inbox, argon2) = (inbox.clone(), argon2.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    yield_to_the_runtime();
                    let mut memory = Vec::new();
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match inbox.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&argon2, &mut memory),
                            Err(_) => return, // the hasher was dropped
                        }
                    }
                })
                .map_err(|e| HashError::Internal(format!("cannot start a hashing thread: {e}")))?;
        }
        Ok(Self {
            jobs,
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_in_flight: concurrency + settings.queue,
            threads: concurrency,
            max_wait: settings.max_wait,
            hash_micros,
            dummy,
        })
    }

    /// Refuses at once when a hash asked for now would be refused: for a flow to call before
    /// any store work, so that refusing under overload costs next to nothing. Takes no place:
    /// the hash itself is admitted again (and may still be refused) when it is asked for.
    pub fn check_room(&self) -> Result<(), HashError> {
        if self.admits(self.in_flight.load(Ordering::Acquire)) {
            Ok(())
        } else {
            Err(HashError::Busy)
        }
    }

    /// Whether a job that finds `ahead` jobs accepted (running or queued) may join them.
    fn admits(&self, ahead: usize) -> bool {
        if ahead >= self.max_in_flight {
            return false;
        }
        // It waits for the queued jobs ahead of it, and for one running job to end: each
        // thread ends a job every hash time, so rounds = ceil((queued + 1) / threads).
        let Some(queued) = (ahead + 1).checked_sub(self.threads) else {
            return true; // a thread is free
        };
        let rounds = queued.div_ceil(self.threads) as u64;
        let hash = Duration::from_micros(self.hash_micros.load(Ordering::Relaxed));
        hash.saturating_mul(rounds.min(u32::MAX as u64) as u32) <= self.max_wait
    }

    /// The measured time of one hash.
    pub fn hash_time(&self) -> Duration {
        Duration::from_micros(self.hash_micros.load(Ordering::Relaxed))
    }

    /// Takes a place for a hash to come, or refuses at once as [`Self::check_room`] would: for a
    /// flow that must not spend anything (a rate-limit budget) on a hash it could then not get.
    /// The place counts as a job ahead of later callers until the hash ends or the
    /// reservation is dropped.
    pub fn reserve(&self) -> Result<Reservation<'_>, HashError> {
        Ok(Reservation {
            hasher: self,
            place: self.take_place()?,
        })
    }

    fn take_place(&self) -> Result<Place, HashError> {
        if !self.admits(self.in_flight.fetch_add(1, Ordering::AcqRel)) {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(HashError::Busy);
        }
        Ok(Place(self.in_flight.clone()))
    }

    /// Runs `job` on a hashing thread, or refuses at once when its expected wait is too long
    /// or every thread and queue place is taken.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Argon2<'static>, &mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let place = self.take_place()?;
        self.run_in(place, job).await
    }

    /// Runs `job` on a hashing thread in a place already taken.
    async fn run_in<T: Send + 'static>(
        &self,
        place: Place,
        job: impl FnOnce(&Argon2<'static>, &mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let hash_micros = self.hash_micros.clone();
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |argon2, memory| {
            let started = Instant::now();
            let result = job(argon2, memory);
            let took = micros(started.elapsed());
            let _ = hash_micros.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |avg| {
                Some(avg - avg / 8 + took / 8)
            });
            drop(place);
            let _ = reply.send(result);
        });
        self.jobs
            .send(job)
            .map_err(|_| HashError::Internal("hashing threads are gone".into()))?;
        answer
            .await
            .map_err(|_| HashError::Internal("a hashing thread failed".into()))
    }

    /// Hashes a new password into a PHC string with a fresh salt.
    pub async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        let place = self.take_place()?;
        self.hash_in(place, password).await
    }

    async fn hash_in(&self, place: Place, password: &Password) -> Result<PasswordHash, HashError> {
        let secret = SecretString::from(password.expose().to_owned());
        self.run_in(place, move |argon2, memory| {
            let salt = SaltString::generate(&mut OsRng);
            let output = compute(
                argon2,
                memory,
                secret.expose_secret().as_bytes(),
                salt.as_salt(),
            )?;
            let phc = PhcString {
                algorithm: Algorithm::Argon2id.ident(),
                version: Some(Version::V0x13.into()),
                params: ParamsString::try_from(argon2.params())?,
                salt: Some(salt.as_salt()),
                hash: Some(output),
            };
            Ok(PasswordHash(phc.to_string()))
        })
        .await?
        .map_err(|e: argon2::password_hash::Error| HashError::Internal(e.to_string()))
    }

    /// Checks a password against a stored hash (or against the dummy hash when `hash` is None,
    /// which always answers false but costs the same). The stored hash's own algorithm,
    /// version and cost are used, so hashes made under older settings keep verifying.
    pub async fn verify(
        &self,
        password: &Password,
        hash: Option<&PasswordHash>,
    ) -> Result<bool, HashError> {
        let secret = SecretString::from(password.expose().to_owned());
        let (phc, real) = match hash {
            Some(h) => (h.0.clone(), true),
            None => (self.dummy.clone(), false),
        };
        self.run(move |_, memory| {
            let parsed = PhcString::new(&phc)?;
            let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
                return Ok(false);
            };
            let version = parsed
                .version
                .map(Version::try_from)
                .transpose()?
                .unwrap_or_default();
            let stored = Argon2::new(
                Algorithm::try_from(parsed.algorithm)?,
                version,
                Params::try_from(&parsed)?,
            );
            let computed = compute(&stored, memory, secret.expose_secret().as_bytes(), salt)?;
            // `Output` compares in constant time.
            Ok(computed == expected && real)
        })
        .await?
        .map_err(|e: argon2::password_hash::Error| HashError::Internal(e.to_string()))
    }
}

/// Lowers the calling hashing thread's priority (nice 10, Linux), so that on busy cores the
/// runtime's threads run first: a refusal, a token check or a refresh is answered in
/// microseconds while logins queue, and hashing still gets every cycle left over.
fn yield_to_the_runtime() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its arguments; who = 0 is the calling thread on Linux.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

/// argon2 over `memory`, the calling thread's work area, grown once to the cost's size.
fn compute(
    argon2: &Argon2<'_>,
    memory: &mut Vec<Block>,
    password: &[u8],
    salt: Salt<'_>,
) -> Result<Output, argon2::password_hash::Error> {
    let mut salt_bytes = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_bytes)?;
    let blocks = argon2.params().block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let len = argon2
        .params()
        .output_len()
        .unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    Output::init_with(len, |out| {
        argon2
            .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
            .map_err(Into::into)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap(concurrency: usize, queue: usize) -> PasswordHasher {
        PasswordHasher::new(&HashSettings {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            concurrency,
            queue,
            max_wait: Duration::from_secs(10),
        })
        .unwrap()
    }

    /// One thread at the production cost (a hash takes milliseconds), so calls overlap.
    fn full_cost(queue: usize, max_wait: Duration) -> PasswordHasher {
        PasswordHasher::new(&HashSettings {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
            concurrency: 1,
            queue,
            max_wait,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn hash_and_verify() {
        let hasher = cheap(2, 2);
        let pw = Password::parse("correct horse").unwrap();
        let hash = hasher.hash(&pw).await.unwrap();
        assert!(hash.0.starts_with("$argon2id$"));
        assert!(!hash.0.contains("correct horse"));
        assert!(hasher.verify(&pw, Some(&hash)).await.unwrap());
        let wrong = Password::parse("wrong horse").unwrap();
        assert!(!hasher.verify(&wrong, Some(&hash)).await.unwrap());
        assert!(!hasher.verify(&pw, None).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_are_standard_phc_strings_both_ways() {
        use argon2::password_hash::PasswordVerifier as _;
        let hasher = cheap(1, 1);
        let pw = Password::parse("interoperable").unwrap();
        // Ours verifies with the argon2 crate's own verifier...
        let ours = hasher.hash(&pw).await.unwrap();
        let parsed = PhcString::new(&ours.0).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"interoperable", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"other", &parsed)
                .is_err()
        );
        // ...and one made elsewhere, with other costs, verifies with ours.
        let params = Params::new(2048, 3, 1, None).unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"interoperable", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(
            hasher
                .verify(&pw, Some(&PasswordHash(theirs.clone())))
                .await
                .unwrap()
        );
        let wrong = Password::parse("not interoperable").unwrap();
        assert!(
            !hasher
                .verify(&wrong, Some(&PasswordHash(theirs)))
                .await
                .unwrap()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refuses_when_full() {
        let hasher = Arc::new(full_cost(1, Duration::from_secs(10)));
        let pw = || Password::parse("password123").unwrap();
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let h = hasher.clone();
            let p = pw();
            tasks.push(tokio::spawn(async move { h.hash(&p).await }));
        }
        let mut busy = 0;
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(HashError::Busy) => busy += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(ok >= 2, "one running and one queued must finish, got {ok}");
        assert!(busy >= 1, "the rest must be refused, got {busy} refusals");
        assert_eq!(
            hasher.in_flight.load(Ordering::Acquire),
            0,
            "every place given back"
        );
        hasher.hash(&pw()).await.unwrap();
    }

    #[test]
    fn admits_by_expected_wait() {
        let mut hasher = cheap(2, 100);
        hasher.max_wait = Duration::from_millis(25);
        hasher.hash_micros.store(10_000, Ordering::Relaxed);
        // Two threads, 10 ms a hash: the 3rd and 4th wait one hash, the 5th and 6th two, the
        // 7th three (30 ms, past 25).
        let admitted: Vec<bool> = (0..8).map(|ahead| hasher.admits(ahead)).collect();
        assert_eq!(admitted, [true, true, true, true, true, true, false, false]);
        // No wait allowed: only a free thread admits.
        hasher.max_wait = Duration::ZERO;
        assert_eq!(
            (0..4).map(|a| hasher.admits(a)).collect::<Vec<_>>(),
            [true, true, false, false]
        );
        // HASH_QUEUE still caps the count, however fast a hash is.
        let capped = cheap(1, 2);
        capped.hash_micros.store(0, Ordering::Relaxed);
        assert_eq!(
            (0..4).map(|a| capped.admits(a)).collect::<Vec<_>>(),
            [true, true, true, false]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hash_that_would_wait_too_long_is_refused_at_once() {
        let hasher = Arc::new(full_cost(100, Duration::ZERO));
        // The measured time is a real hash's, seeded by the dummy hash.
        assert!(hasher.hash_time() > Duration::from_micros(100));
        let pw = Password::parse("password123").unwrap();
        let first = {
            let h = hasher.clone();
            tokio::spawn(async move { h.hash(&Password::parse("password123").unwrap()).await })
        };
        while hasher.in_flight.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        // One running, no wait allowed: the room check and a hash are both refused, although
        // 100 queue places are free, and neither waits for the running hash.
        let t = Instant::now();
        assert!(matches!(hasher.check_room(), Err(HashError::Busy)));
        assert!(matches!(hasher.hash(&pw).await, Err(HashError::Busy)));
        assert!(
            hasher.in_flight.load(Ordering::Acquire) == 1 || first.is_finished(),
            "the refused hash took no place"
        );
        let refused_in = t.elapsed();
        first.await.unwrap().unwrap();
        assert!(hasher.check_room().is_ok());
        hasher.hash(&pw).await.unwrap();
        assert!(
            refused_in < hasher.hash_time(),
            "refused in {refused_in:?}, a hash takes {:?}",
            hasher.hash_time()
        );
    }

    #[tokio::test]
    async fn a_reservation_holds_its_place_until_its_hash_or_its_drop() {
        let mut hasher = cheap(1, 100);
        hasher.max_wait = Duration::ZERO;
        let pw = Password::parse("password123").unwrap();
        let reserved = hasher.reserve().expect("a free thread");
        // The reserved place counts: with no wait allowed, nobody else gets in.
        assert!(matches!(hasher.check_room(), Err(HashError::Busy)));
        assert!(matches!(hasher.reserve(), Err(HashError::Busy)));
        assert!(matches!(hasher.hash(&pw).await, Err(HashError::Busy)));
        // Its own hash is never refused, and gives the place back.
        reserved.hash(&pw).await.unwrap();
        assert_eq!(hasher.in_flight.load(Ordering::Acquire), 0);
        drop(hasher.reserve().unwrap());
        assert_eq!(
            hasher.in_flight.load(Ordering::Acquire),
            0,
            "a dropped one too"
        );
        hasher.hash(&pw).await.unwrap();
    }

    #[tokio::test]
    async fn the_hash_time_follows_the_hashes() {
        let hasher = cheap(1, 1);
        let seeded = hasher.hash_time();
        hasher
            .hash_micros
            .store(seeded.as_micros() as u64 * 1000, Ordering::Relaxed);
        let pw = Password::parse("password123").unwrap();
        for _ in 0..40 {
            hasher.hash(&pw).await.unwrap();
        }
        // 40 hashes at 1/8 each leave under 1 % of the wrong seed.
        assert!(
            hasher.hash_time() < seeded * 50,
            "{:?} after 40 hashes of about {seeded:?}",
            hasher.hash_time()
        );
    }
}
