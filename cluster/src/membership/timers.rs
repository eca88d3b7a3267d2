//! Delivery of foca's timer events on tokio time.

use std::{cmp::Ordering, collections::BinaryHeap, time::Duration};

use foca::Timer;
use tokio::time::Instant;

use super::identity::NodeIdentity;

/// Stand-in for a due time beyond the clock's range.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Min-heap of foca timers by due instant.
///
/// foca requires every submitted timer to be delivered, and in order: an indirect-probe
/// timer must not overtake the probe timer scheduled after it (foca issue #26). Keeping
/// them in one heap owned by the agent loop, ordered by (due, submission order), gives
/// both without a task per timer; the loop sleeps until the earliest due instant.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Scheduled>,
    next_seq: u64,
}

#[derive(Debug)]
struct Scheduled {
    due: Instant,
    seq: u64,
    timer: Timer<NodeIdentity>,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    // Reversed: BinaryHeap is a max-heap and we want the earliest (then oldest) on top.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

impl TimerQueue {
    /// Schedules `timer` to be due `after` from now.
    pub(crate) fn submit(&mut self, timer: Timer<NodeIdentity>, after: Duration) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let now = Instant::now();
        // Checked: `after` may come from the config (`suspect_to_down`), and an instant past
        // the clock's range would panic; a century away is as good as never.
        let due = now
            .checked_add(after)
            .or_else(|| now.checked_add(FAR_FUTURE))
            .unwrap_or(now);
        self.heap.push(Scheduled { due, seq, timer });
    }

    /// When the earliest timer is due, if any.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|s| s.due)
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Timer<NodeIdentity>> {
        if self.heap.peek().is_some_and(|s| s.due <= now) {
            self.heap.pop().map(|s| s.timer)
        } else {
            None
        }
    }

    /// Number of pending timers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn delivers_in_due_then_submission_order() {
        let mut q = TimerQueue::default();
        q.submit(Timer::ProbeRandomMember(2), Duration::from_millis(500));
        q.submit(Timer::PeriodicGossip(1), Duration::from_millis(200));
        q.submit(Timer::PeriodicAnnounce(3), Duration::from_millis(200));
        assert_eq!(q.pop_due(Instant::now()), None);

        let later = Instant::now() + Duration::from_secs(1);
        assert_eq!(q.pop_due(later), Some(Timer::PeriodicGossip(1)));
        assert_eq!(q.pop_due(later), Some(Timer::PeriodicAnnounce(3)));
        assert_eq!(q.pop_due(later), Some(Timer::ProbeRandomMember(2)));
        assert_eq!(q.pop_due(later), None);
        assert_eq!(q.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_beyond_the_clocks_range_is_kept_not_a_panic() {
        let mut q = TimerQueue::default();
        q.submit(Timer::PeriodicGossip(1), Duration::MAX);
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop_due(Instant::now() + Duration::from_secs(3600)), None);
    }
}
