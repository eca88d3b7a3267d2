//! Local health (after Lifeguard, Dadgar et al. 2018): a node that hears from fewer of
//! its peers than it suspects doubts itself before it declares anyone Down.
//!
//! foca's Down is final for an identity: a live member declared Down must renew its
//! identity and rejoin, which every node sees as that member going down and up again
//! (bucket owners move twice, sessions restart). During a partition the cut-off node
//! suspects every member on the other side and, without this, declares them all Down; after
//! the heal each of them renews. The cut-off node is the one at fault, and the only sign it
//! has is that it hears from almost nobody. So while fewer members are in touch with it
//! than are silent (Suspect, or not heard from for a probe cycle), counting itself with the
//! ones in touch, it postpones each "suspect to Down" timer by one `suspect_to_down` at a
//! time, for at most [`MAX_DOWN_DEFERRALS`] of them from a member's first postponement.
//! The majority side is healthy and declares the cut-off node Down at the normal speed;
//! only that node renews after the heal. A crash seen by a healthy majority is declared at
//! the normal speed too. No I/O here: the agent supplies the counts and the clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How many `suspect_to_down` periods a member's Down verdict may be postponed in all
/// while this node doubts itself: with the default (1 s) a member is declared Down at most
/// about 8 s later than usual. Lifeguard caps its local health multiplier at 8 for the same
/// reason: a node that really lost most of its peers must still, eventually, say so.
pub const MAX_DOWN_DEFERRALS: u32 = 8;

/// Whether a node with `heard` of its other members in touch and `silent` of them not
/// should doubt its own connectivity: it and the members in touch are fewer than the
/// silent ones. Ties count as healthy, so a two-node cluster (or a 2 + 2 split) declares a
/// silent peer Down at the normal speed: neither side can tell which one is at fault.
pub fn doubts_itself(heard: usize, silent: usize) -> bool {
    silent > heard + 1
}

/// Down verdicts being postponed: since when, per suspected member.
///
/// foca submits a new "suspect to Down" timer at every failed probe of a Suspect member,
/// so one member may have several pending. They share one deadline: the first
/// postponement plus [`MAX_DOWN_DEFERRALS`] steps.
#[derive(Debug)]
pub struct DownDeferrals<K> {
    since: HashMap<K, Instant>,
}

impl<K> Default for DownDeferrals<K> {
    fn default() -> Self {
        Self {
            since: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash + Clone> DownDeferrals<K> {
    /// Decides a due "suspect to Down" timer for `member` at `now`: `Some(delay)` to submit
    /// it again after `delay` (this node doubts itself and the member's deadline has not
    /// passed; at most `step`), `None` to let it fire. Letting it fire forgets the member,
    /// so memory is bounded by the members with a pending verdict.
    pub fn postpone(
        &mut self,
        member: &K,
        doubts_itself: bool,
        now: Instant,
        step: Duration,
    ) -> Option<Duration> {
        if doubts_itself {
            let first = *self.since.entry(member.clone()).or_insert(now);
            // Checked: `step` comes from the config, and an Instant past the clock's range
            // would panic; such a deadline is as good as never.
            match first.checked_add(step.saturating_mul(MAX_DOWN_DEFERRALS)) {
                Some(until) if now < until => return Some(step.min(until - now)),
                None => return Some(step),
                Some(_) => {}
            }
        }
        self.since.remove(member);
        None
    }

    /// Whether a Down verdict for `member` is being postponed now.
    pub fn is_postponed(&self, member: &K) -> bool {
        self.since.contains_key(member)
    }

    /// Forgets `member` (its suspicion was refuted, or its timer is no longer foca's).
    pub fn forget(&mut self, member: &K) {
        self.since.remove(member);
    }

    /// Forgets every member: this node's identity changed, and foca ignores the timers it
    /// submitted before.
    pub fn clear(&mut self) {
        self.since.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cut_off_side_doubts_itself_and_the_majority_does_not() {
        // 3 nodes, one cut off: it hears nobody (0 heard, 2 silent); the other two each
        // hear one and miss one.
        assert!(doubts_itself(0, 2));
        assert!(!doubts_itself(1, 1));
        // 5 nodes split 2 | 3: the pair hears 1 and misses 3; the three hear 2, miss 2.
        assert!(doubts_itself(1, 3));
        assert!(!doubts_itself(2, 2));
        // A lone node cut off from 4.
        assert!(doubts_itself(0, 4));
        // 5 nodes, two crashed: the three survivors are a healthy majority.
        assert!(!doubts_itself(2, 2));
        // Two nodes, or a 2 + 2 split: a tie, so each side goes on as usual.
        assert!(!doubts_itself(0, 1));
        assert!(!doubts_itself(1, 2));
        // Hearing everyone.
        assert!(!doubts_itself(4, 0));
    }

    const STEP: Duration = Duration::from_secs(1);

    #[test]
    fn every_timer_of_a_member_shares_one_deadline_then_fires_and_is_forgotten() {
        let mut d = DownDeferrals::default();
        let t0 = Instant::now();
        assert_eq!(d.postpone(&7u64, true, t0, STEP), Some(STEP));
        assert!(d.is_postponed(&7));
        // foca's further timers for the same suspicion (one per failed probe) do not get
        // a deadline of their own.
        let t = t0 + Duration::from_millis(7_600);
        assert_eq!(
            d.postpone(&7, true, t, STEP),
            Some(Duration::from_millis(400))
        );
        assert_eq!(
            d.postpone(&7, true, t0 + STEP * 8, STEP),
            None,
            "deadline: it fires"
        );
        assert!(!d.is_postponed(&7));
        assert!(d.since.is_empty(), "forgotten");
        // A fresh suspicion of the same member starts a new deadline.
        assert_eq!(d.postpone(&7, true, t0 + STEP * 9, STEP), Some(STEP));
    }

    #[test]
    fn a_huge_step_from_the_config_does_not_panic() {
        let mut d = DownDeferrals::default();
        let t0 = Instant::now();
        assert_eq!(
            d.postpone(&1u8, true, t0, Duration::MAX),
            Some(Duration::MAX)
        );
        assert_eq!(d.postpone(&1u8, false, t0, Duration::MAX), None);
    }

    #[test]
    fn a_healthy_node_lets_every_verdict_fire_and_forgets_postponed_ones() {
        let mut d = DownDeferrals::default();
        let t0 = Instant::now();
        assert_eq!(d.postpone(&1u64, false, t0, STEP), None);
        assert!(d.since.is_empty());
        assert!(d.postpone(&2u64, true, t0, STEP).is_some());
        assert!(d.postpone(&3u64, true, t0, STEP).is_some());
        // Health came back: the next due timer fires at once.
        assert_eq!(d.postpone(&2, false, t0 + STEP, STEP), None);
        assert!(!d.is_postponed(&2));
        assert!(d.is_postponed(&3));
        d.forget(&3);
        assert!(!d.is_postponed(&3));
        assert!(d.postpone(&4u64, true, t0, STEP).is_some());
        d.clear();
        assert!(d.since.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn no_verdict_is_postponed_past_its_deadline(
            steps in proptest::collection::vec((proptest::bool::ANY, 0u64..3000), 1..64),
        ) {
            let mut d = DownDeferrals::default();
            let t0 = Instant::now();
            let mut now = t0;
            let mut first: Option<Instant> = None;
            for (doubts, advance_ms) in steps {
                now += Duration::from_millis(advance_ms);
                match d.postpone(&1u8, doubts, now, STEP) {
                    Some(delay) => {
                        let f = *first.get_or_insert(now);
                        proptest::prop_assert!(delay <= STEP && !delay.is_zero());
                        proptest::prop_assert!(now + delay <= f + STEP * MAX_DOWN_DEFERRALS);
                    }
                    None => {
                        first = None;
                        proptest::prop_assert!(d.since.is_empty());
                    }
                }
            }
        }
    }
}
