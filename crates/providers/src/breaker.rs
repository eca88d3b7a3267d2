//! A per-provider circuit breaker: stops calling a provider that keeps failing, so an
//! evaluation fails fast instead of queueing behind timeouts, and lets a few probes test
//! it after a cooldown.
//!
//! - Closed: every attempt goes through; outcomes are kept for a rolling `window`. Once
//!   the window holds at least `min_calls` outcomes and the failure rate exceeds
//!   `failure_rate`, the breaker opens.
//! - Open: attempts are rejected without touching the network until `cooldown` has
//!   passed; the first attempt after that half-opens the breaker.
//! - HalfOpen: up to `half_open_probes` attempts run at once; the others are rejected.
//!   A successful probe closes the breaker (with an empty window); a failed one opens it
//!   again for another cooldown.
//!
//! Outcomes are recorded through a [`Permit`]. Each transition starts a new generation,
//! so an attempt admitted before a transition cannot move the new state (a slow call
//! from the closed era finishing during half-open is not a probe). The `*_at` methods
//! take the time so tests can drive the clock.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// When the breaker opens and how it recovers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Length of the rolling window of outcomes, in milliseconds.
    pub window_ms: u64,
    /// Fewest outcomes in the window before the failure rate is judged.
    pub min_calls: u32,
    /// Opens when failures / outcomes in the window is greater than this (0..=1).
    pub failure_rate: f64,
    /// How long the breaker stays open before probing, in milliseconds.
    pub cooldown_ms: u64,
    /// Attempts let through at once while half-open.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window_ms: 30_000,
            min_calls: 10,
            failure_rate: 0.5,
            cooldown_ms: 10_000,
            half_open_probes: 1,
        }
    }
}

/// The breaker's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are rejected.
    Open,
    /// A limited number of probes go through.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open` (metric label value).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// A snapshot of a breaker's state and counters, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerStats {
    /// Current state.
    pub state: BreakerState,
    /// Calls made through providers sharing this breaker (`complete` invocations).
    pub calls: u64,
    /// Attempts admitted (first tries and retries).
    pub attempts: u64,
    /// Attempts that failed in a way that counts against the provider's health.
    pub failures: u64,
    /// Retries (attempts after the first of a call).
    pub retries: u64,
    /// Attempts rejected because the breaker was open or out of probes.
    pub rejections: u64,
    /// Transitions into `open`.
    pub opened: u64,
    /// Transitions into `half_open`.
    pub half_opened: u64,
    /// Transitions into `closed`.
    pub closed: u64,
}

/// An attempt the breaker did not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// State at the time.
    pub state: BreakerState,
    /// Time left of the cooldown (zero while half-open and out of probes).
    pub retry_in: Duration,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    generation: u64,
    outcomes: VecDeque<(Instant, bool)>,
    opened_at: Option<Instant>,
    probes_in_flight: u32,
}

/// One provider's circuit breaker and call counters; share it with `Arc`.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
    calls: AtomicU64,
    attempts: AtomicU64,
    failures: AtomicU64,
    retries: AtomicU64,
    rejections: AtomicU64,
    opened: AtomicU64,
    half_opened: AtomicU64,
    closed: AtomicU64,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                generation: 0,
                outcomes: VecDeque::new(),
                opened_at: None,
                probes_in_flight: 0,
            }),
            calls: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            rejections: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            half_opened: AtomicU64::new(0),
            closed: AtomicU64::new(0),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    // A poisoned lock only means another thread panicked mid-update of plain data;
    // the state is still usable, and a breaker must not take the caller down with it.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Current state (an open breaker whose cooldown has passed still reads `open`
    /// until the next attempt half-opens it).
    pub fn state(&self) -> BreakerState {
        self.lock().state
    }

    /// State and counters.
    pub fn stats(&self) -> BreakerStats {
        let state = self.state();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BreakerStats {
            state,
            calls: get(&self.calls),
            attempts: get(&self.attempts),
            failures: get(&self.failures),
            retries: get(&self.retries),
            rejections: get(&self.rejections),
            opened: get(&self.opened),
            half_opened: get(&self.half_opened),
            closed: get(&self.closed),
        }
    }

    pub(crate) fn count_call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Asks to make one attempt now.
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        self.try_acquire_at(Instant::now())
    }

    /// Asks to make one attempt at `now`.
    pub fn try_acquire_at(&self, now: Instant) -> Result<Permit<'_>, Rejected> {
        let mut inner = self.lock();
        if inner.state == BreakerState::Open {
            let cooldown = Duration::from_millis(self.config.cooldown_ms);
            let since = inner
                .opened_at
                .map_or(cooldown, |t| now.saturating_duration_since(t));
            if since < cooldown {
                drop(inner);
                self.rejections.fetch_add(1, Ordering::Relaxed);
                return Err(Rejected {
                    state: BreakerState::Open,
                    retry_in: cooldown - since,
                });
            }
            self.transition(&mut inner, BreakerState::HalfOpen, now);
        }
        let probe = inner.state == BreakerState::HalfOpen;
        if probe {
            if inner.probes_in_flight >= self.config.half_open_probes.max(1) {
                drop(inner);
                self.rejections.fetch_add(1, Ordering::Relaxed);
                return Err(Rejected {
                    state: BreakerState::HalfOpen,
                    retry_in: Duration::ZERO,
                });
            }
            inner.probes_in_flight += 1;
        }
        let generation = inner.generation;
        drop(inner);
        self.attempts.fetch_add(1, Ordering::Relaxed);
        Ok(Permit {
            breaker: self,
            generation,
            probe,
            done: false,
        })
    }

    fn record(&self, now: Instant, generation: u64, probe: bool, failed: bool) {
        if failed {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        match inner.state {
            BreakerState::Closed => {
                inner.outcomes.push_back((now, failed));
                let window = Duration::from_millis(self.config.window_ms);
                while inner
                    .outcomes
                    .front()
                    .is_some_and(|(t, _)| now.saturating_duration_since(*t) > window)
                {
                    inner.outcomes.pop_front();
                }
                let total = inner.outcomes.len();
                let failures = inner.outcomes.iter().filter(|(_, f)| *f).count();
                if total >= self.config.min_calls as usize
                    && failures as f64 > self.config.failure_rate * total as f64
                {
                    self.transition(&mut inner, BreakerState::Open, now);
                }
            }
            BreakerState::HalfOpen if probe => {
                inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
                let next = if failed {
                    BreakerState::Open
                } else {
                    BreakerState::Closed
                };
                self.transition(&mut inner, next, now);
            }
            BreakerState::HalfOpen | BreakerState::Open => {}
        }
    }

    fn release(&self, generation: u64, probe: bool) {
        let mut inner = self.lock();
        if probe && inner.generation == generation && inner.state == BreakerState::HalfOpen {
            inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
        }
    }

    fn transition(&self, inner: &mut Inner, to: BreakerState, now: Instant) {
        let from = inner.state;
        inner.state = to;
        inner.generation += 1;
        inner.probes_in_flight = 0;
        inner.outcomes.clear();
        let counter = match to {
            BreakerState::Open => {
                inner.opened_at = Some(now);
                &self.opened
            }
            BreakerState::HalfOpen => &self.half_opened,
            BreakerState::Closed => {
                inner.opened_at = None;
                &self.closed
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            from = from.as_str(),
            to = to.as_str(),
            "provider circuit breaker"
        );
    }
}

/// Leave to make one attempt; report how it went with [`Permit::success`] or
/// [`Permit::failure`]. Dropping it unreported (a cancelled call) frees its probe slot
/// without counting an outcome.
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    generation: u64,
    probe: bool,
    done: bool,
}

impl Permit<'_> {
    /// Whether this attempt is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The attempt succeeded (or failed in a way that says nothing about the provider).
    pub fn success(self) {
        self.finish_at(Instant::now(), false);
    }

    /// The attempt failed in a way that counts against the provider.
    pub fn failure(self) {
        self.finish_at(Instant::now(), true);
    }

    /// Reports the outcome as of `now`.
    pub fn finish_at(mut self, now: Instant, failed: bool) {
        self.done = true;
        self.breaker
            .record(now, self.generation, self.probe, failed);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.release(self.generation, self.probe);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            window_ms: 1_000,
            min_calls: 4,
            failure_rate: 0.5,
            cooldown_ms: 500,
            half_open_probes: 1,
        })
    }

    fn run(b: &Breaker, now: Instant, failed: bool) {
        b.try_acquire_at(now).unwrap().finish_at(now, failed);
    }

    #[test]
    fn opens_only_above_the_rate_with_enough_calls() {
        let b = breaker();
        let t = Instant::now();
        for _ in 0..3 {
            run(&b, t, true);
        }
        assert_eq!(b.state(), BreakerState::Closed, "below min_calls");
        run(&b, t, false);
        assert_eq!(b.state(), BreakerState::Open, "3 of 4 is above 0.5");
    }

    #[test]
    fn rate_at_threshold_stays_closed_and_old_outcomes_expire() {
        let b = breaker();
        let t = Instant::now();
        for failed in [true, false, true, false] {
            run(&b, t, failed);
        }
        assert_eq!(b.state(), BreakerState::Closed, "2/4 is not above 0.5");
        // Failures older than the window do not count.
        let later = t + Duration::from_millis(1_500);
        for failed in [true, false, false, false] {
            run(&b, later, failed);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn open_rejects_then_half_opens_and_a_good_probe_closes() {
        let b = breaker();
        let t = Instant::now();
        for _ in 0..4 {
            run(&b, t, true);
        }
        assert_eq!(b.state(), BreakerState::Open);
        let r = b
            .try_acquire_at(t + Duration::from_millis(100))
            .unwrap_err();
        assert_eq!(r.state, BreakerState::Open);
        assert_eq!(r.retry_in, Duration::from_millis(400));

        let after = t + Duration::from_millis(600);
        let probe = b.try_acquire_at(after).unwrap();
        assert!(probe.is_probe());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let second = b.try_acquire_at(after).unwrap_err();
        assert_eq!(second.state, BreakerState::HalfOpen);
        probe.finish_at(after, false);
        assert_eq!(b.state(), BreakerState::Closed);

        let s = b.stats();
        assert_eq!((s.opened, s.half_opened, s.closed), (1, 1, 1));
        assert_eq!((s.attempts, s.failures, s.rejections), (5, 4, 2));
    }

    #[test]
    fn a_failed_probe_reopens_and_a_dropped_probe_frees_its_slot() {
        let b = breaker();
        let t = Instant::now();
        for _ in 0..4 {
            run(&b, t, true);
        }
        let t1 = t + Duration::from_millis(600);
        drop(b.try_acquire_at(t1).unwrap());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.try_acquire_at(t1).unwrap();
        probe.finish_at(t1, true);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.try_acquire_at(t1 + Duration::from_millis(400)).is_err());
        run(&b, t1 + Duration::from_millis(500), false);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn stale_permits_do_not_move_the_new_state() {
        let b = breaker();
        let t = Instant::now();
        let slow = b.try_acquire_at(t).unwrap();
        for _ in 0..4 {
            run(&b, t, true);
        }
        assert_eq!(b.state(), BreakerState::Open);
        let t1 = t + Duration::from_millis(600);
        let probe = b.try_acquire_at(t1).unwrap();
        // The closed-era call finishing now is not the probe.
        slow.finish_at(t1, false);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        probe.finish_at(t1, false);
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
