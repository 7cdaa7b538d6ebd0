//! argon2id password hashing ([`PasswordHasher`]) off the async runtime, on a fixed pool of
//! threads with a bounded queue. A caller is refused at once ([`HashError::Busy`]) when its
//! expected wait (the jobs ahead of it × the measured time of a hash ÷ the threads) would pass
//! `HASH_MAX_WAIT`, or when `HASH_CONCURRENCY` run and `HASH_QUEUE` wait already. Hashes are
//! standard PHC strings, and an unknown account is checked against a dummy hash so it costs
//! what a wrong password costs.
//!
//! `HASH_MAX_WAIT` is room for a burst, not for a standing queue (the idea of CoDel, the
//! controlled-delay queue discipline): once every job has waited longer than one hash for a
//! whole `HASH_MAX_WAIT`, the load is no burst, and a caller is admitted only to a free thread
//! until, over a window of `HASH_MAX_WAIT`, the hashes asked for (admitted or refused) are fewer
//! than the threads can do in it. Under sustained overload an admitted login then waits for no
//! other, and the excess is refused at once instead of queueing; once the load falls below what
//! the threads do, callers may wait again.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
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
    /// Whether the queue has stood (see the module's documentation).
    standing: Arc<Standing>,
    /// A hash of a random password, verified when an account does not exist so that an
    /// unknown account and a wrong password cost the same time.
    dummy: String,
}

/// Tells a standing queue from a burst: jobs that have waited longer than one hash for a whole
/// `HASH_MAX_WAIT` make it [`Standing::is_tight`], until a window of `HASH_MAX_WAIT` in which
/// the hashes asked for (admitted or refused) are fewer than the threads can do in it.
struct Standing {
    epoch: Instant,
    /// Since when (µs after `epoch`, plus one) every job started has waited longer than one
    /// hash; 0 when the last one did not.
    above_since: AtomicU64,
    tight: AtomicBool,
    /// While tight: when the current window began (µs after `epoch`, plus one), and the hashes
    /// asked for in it.
    window_start: AtomicU64,
    asked: AtomicU64,
}

impl Standing {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            above_since: AtomicU64::new(0),
            tight: AtomicBool::new(false),
            window_start: AtomicU64::new(0),
            asked: AtomicU64::new(0),
        }
    }

    fn is_tight(&self) -> bool {
        self.tight.load(Ordering::Relaxed)
    }

    fn at(&self, t: Instant) -> u64 {
        micros(t.saturating_duration_since(self.epoch)).saturating_add(1)
    }

    /// A job starts at `started` after waiting since `queued`, with hashes taking `hash`.
    fn job_started(&self, queued: Instant, started: Instant, hash: Duration, interval: Duration) {
        if started.saturating_duration_since(queued) <= hash {
            self.above_since.store(0, Ordering::Relaxed);
            return;
        }
        let now = self.at(started);
        let since =
            match self
                .above_since
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => now, // the first such job
                Err(since) => since,
            };
        // `since` may be stale when the tight mode has just ended (which resets it): only a
        // count still running enters.
        if now.saturating_sub(since) >= micros(interval)
            && !self.is_tight()
            && self.above_since.load(Ordering::Relaxed) != 0
        {
            self.asked.store(0, Ordering::Relaxed);
            self.window_start.store(now, Ordering::Relaxed);
            // Release: whoever sees the mode sees its window.
            if !self.tight.swap(true, Ordering::Release) {
                tracing::warn!(
                    interval_ms = interval.as_millis() as u64,
                    "hashes have waited longer than one hash for HASH_MAX_WAIT: a standing \
                     queue, so callers are admitted only to a free hashing thread until fewer \
                     hashes are asked for than the threads can do"
                );
            }
        }
    }

    /// A hash is asked for at `now` (admitted or not). While tight, a window that has lasted
    /// `interval` (and at least eight hashes ÷ `threads`) is judged at the next hash asked
    /// for: when its hashes would have kept fewer than `threads` busy, the load is below what
    /// the pool does, and HASH_MAX_WAIT applies again; else a new window begins.
    fn asked(&self, now: Instant, hash: Duration, threads: usize, interval: Duration) {
        if !self.tight.load(Ordering::Acquire) {
            return;
        }
        self.asked.fetch_add(1, Ordering::Relaxed);
        let now = self.at(now);
        let start = self.window_start.load(Ordering::Relaxed);
        let window = now.saturating_sub(start);
        // At least eight hashes' worth per thread: a window that holds only a few hashes would
        // be emptied now and then by a random gap in the arrivals of an overload.
        let shortest = interval.max(hash.saturating_mul(8) / threads.max(1) as u32);
        if window < micros(shortest).max(1)
            || self
                .window_start
                .compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return; // the window goes on, or another caller judges it
        }
        let asked = self.asked.swap(0, Ordering::Relaxed);
        let work = asked.saturating_mul(micros(hash));
        if work < (threads as u64).saturating_mul(window) {
            self.above_since.store(0, Ordering::Relaxed);
            if self.tight.swap(false, Ordering::Relaxed) {
                tracing::info!(
                    "fewer hashes asked for than the threads can do: callers are admitted to \
                     HASH_MAX_WAIT again"
                );
            }
        }
    }
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
        let standing = Arc::new(Standing::new());
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
            standing,
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
            // Asked for and refused; one admitted here is counted when its hash is asked for.
            self.asked();
            Err(HashError::Busy)
        }
    }

    /// Counts a hash asked for in the standing queue's window (see [`Standing::asked`]).
    fn asked(&self) {
        self.standing.asked(
            Instant::now(),
            self.hash_time(),
            self.threads,
            self.max_wait,
        );
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
        let hash = self.hash_time();
        hash.saturating_mul(rounds.min(u32::MAX as u64) as u32) <= self.max_wait_now()
    }

    /// `HASH_MAX_WAIT`, or no wait at all while the queue stands.
    fn max_wait_now(&self) -> Duration {
        if self.standing.is_tight() {
            Duration::ZERO
        } else {
            self.max_wait
        }
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
        self.asked();
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
        let (hash_micros, standing) = (self.hash_micros.clone(), self.standing.clone());
        let (interval, queued) = (self.max_wait, Instant::now());
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |argon2, memory| {
            let started = Instant::now();
            let hash = Duration::from_micros(hash_micros.load(Ordering::Relaxed));
            standing.job_started(queued, started, hash, interval);
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

    #[test]
    fn a_queue_standing_for_an_interval_is_told_from_a_burst() {
        let standing = Standing::new();
        let (hash, interval) = (Duration::from_millis(10), Duration::from_millis(100));
        let t0 = standing.epoch + Duration::from_secs(1);
        let ms = |n| Duration::from_millis(n);
        // A job that waited one hash or less is no queue at all.
        standing.job_started(t0, t0 + ms(10), hash, interval);
        assert!(!standing.is_tight());
        // Jobs waiting longer for less than the interval: a burst.
        standing.job_started(t0, t0 + ms(30), hash, interval);
        standing.job_started(t0 + ms(50), t0 + ms(129), hash, interval);
        assert!(!standing.is_tight(), "99 ms of waiting jobs is a burst");
        // One job that waits no longer than a hash starts the count again.
        standing.job_started(t0 + ms(125), t0 + ms(130), hash, interval);
        standing.job_started(t0 + ms(100), t0 + ms(200), hash, interval);
        assert!(!standing.is_tight(), "the count starts again at 200 ms");
        standing.job_started(t0 + ms(250), t0 + ms(299), hash, interval);
        assert!(!standing.is_tight());
        standing.job_started(t0 + ms(250), t0 + ms(300), hash, interval);
        assert!(
            standing.is_tight(),
            "every job waited past a hash for 100 ms"
        );
        // Short waits do not end it (they are what it admits).
        standing.job_started(t0 + ms(301), t0 + ms(302), hash, interval);
        assert!(standing.is_tight());
        // Two threads, 10 ms a hash: 20 hashes fill a window of 100 ms. 26 asked for in the
        // first window (refused or not) are more than that: the load is still past the pool.
        let ask = |at| standing.asked(at, hash, 2, interval);
        for n in 0..25 {
            ask(t0 + ms(300 + n * 4));
        }
        assert!(standing.is_tight(), "the window is not over");
        ask(t0 + ms(400));
        assert!(standing.is_tight(), "26 hashes asked for in a window of 20");
        // 11 in the next one are fewer: it ends.
        for n in 0..10 {
            ask(t0 + ms(400 + n * 9));
        }
        assert!(standing.is_tight());
        ask(t0 + ms(500));
        assert!(
            !standing.is_tight(),
            "11 hashes asked for in a window of 20"
        );
        // And the count of waiting jobs starts again.
        standing.job_started(t0 + ms(500), t0 + ms(520), hash, interval);
        assert!(!standing.is_tight());
        standing.job_started(t0 + ms(600), t0 + ms(620), hash, interval);
        assert!(
            standing.is_tight(),
            "every job waited past a hash from 520 to 620 ms"
        );
        // A window is judged over its whole length: one hash asked for 300 ms later ends it.
        ask(t0 + ms(920));
        assert!(!standing.is_tight(), "1 hash asked for in a window of 60");
        // Asked for while not tight, nothing is counted.
        ask(t0 + ms(700));
        assert_eq!(standing.asked.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn refused_room_checks_count_as_asked_and_admitted_ones_do_not() {
        let mut hasher = cheap(2, 100);
        hasher.max_wait = Duration::from_millis(20);
        hasher.hash_micros.store(10_000, Ordering::Relaxed);
        let standing = hasher.standing.clone();
        standing
            .window_start
            .store(standing.at(Instant::now()), Ordering::Relaxed);
        standing.tight.store(true, Ordering::Release);
        // A free thread: admitted, and not counted (its hash is, when it is asked for).
        assert!(hasher.check_room().is_ok());
        assert_eq!(standing.asked.load(Ordering::Relaxed), 0);
        // Both threads busy: refused and counted. Over more than a window (8 hashes ÷ 2
        // threads = 40 ms) far more hashes are asked for than the threads can do.
        hasher.in_flight.store(2, Ordering::Release);
        let first_window = standing.window_start.load(Ordering::Relaxed);
        let until = Instant::now() + Duration::from_millis(100);
        let mut refused = 0u64;
        while Instant::now() < until {
            assert!(matches!(hasher.check_room(), Err(HashError::Busy)));
            refused += 1;
        }
        assert!(
            standing.window_start.load(Ordering::Relaxed) > first_window,
            "the refusals were counted, and a window judged"
        );
        assert!(standing.is_tight(), "{refused} refusals in 100 ms");
        hasher.in_flight.store(0, Ordering::Release);
    }

    #[test]
    fn a_standing_queue_admits_only_to_a_free_thread() {
        let mut hasher = cheap(2, 100);
        hasher.max_wait = Duration::from_millis(15);
        hasher.hash_micros.store(10_000, Ordering::Relaxed);
        // Two threads, 10 ms a hash: the 3rd and 4th would wait one hash, within HASH_MAX_WAIT.
        let admitted: Vec<bool> = (0..6).map(|ahead| hasher.admits(ahead)).collect();
        assert_eq!(admitted, [true, true, true, true, false, false]);
        hasher.standing.tight.store(true, Ordering::Relaxed);
        let admitted: Vec<bool> = (0..6).map(|ahead| hasher.admits(ahead)).collect();
        assert_eq!(admitted, [true, true, false, false, false, false]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn under_sustained_load_only_a_free_thread_admits_until_the_load_drops() {
        let probe = full_cost(0, Duration::ZERO);
        let hash = probe.hash_time();
        drop(probe);
        // Room for a burst of eight hashes on one thread.
        let hasher = Arc::new(full_cost(100, hash * 8));
        let pw = || Password::parse("password123").unwrap();
        let mut running = tokio::task::JoinSet::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        // Five jobs at all times: each is admitted (a wait of at most four hashes), and every
        // job after the first few waits longer than one hash.
        while !hasher.standing.is_tight() {
            assert!(Instant::now() < deadline, "no standing queue after 30 s");
            while hasher.in_flight.load(Ordering::Acquire) < 5 {
                let (h, p) = (hasher.clone(), pw());
                running.spawn(async move { h.hash(&p).await });
                tokio::task::yield_now().await;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // With a job running (a wait of one hash, well within HASH_MAX_WAIT) a caller is now
        // refused, and so is a reservation.
        assert!(hasher.in_flight.load(Ordering::Acquire) >= 1);
        assert!(matches!(hasher.check_room(), Err(HashError::Busy)));
        assert!(matches!(hasher.reserve(), Err(HashError::Busy)));
        while let Some(done) = running.join_next().await {
            match done.unwrap() {
                Ok(_) | Err(HashError::Busy) => {}
                Err(e) => panic!("{e}"),
            }
        }
        // Every job done, and one caller a hash: fewer than the thread can do, so once a window
        // of HASH_MAX_WAIT has passed, HASH_MAX_WAIT applies again.
        while hasher.standing.is_tight() {
            assert!(
                Instant::now() < deadline,
                "a load below the pool's left the queue standing"
            );
            hasher.hash(&pw()).await.unwrap();
            tokio::time::sleep(hash).await;
        }
        let (first, second) = (hasher.clone(), hasher.clone());
        let first = tokio::spawn(async move { first.hash(&pw()).await });
        while hasher.in_flight.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        let second = tokio::spawn(async move { second.hash(&pw()).await });
        while hasher.in_flight.load(Ordering::Acquire) < 2 && !first.is_finished() {
            tokio::task::yield_now().await;
        }
        assert!(
            hasher.check_room().is_ok(),
            "two jobs ahead fit in HASH_MAX_WAIT"
        );
        first.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
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
