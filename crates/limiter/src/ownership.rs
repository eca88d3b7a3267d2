//! Who owns a bucket, now and in the recent past, as this node has seen it.
//!
//! A bucket's owner is `colony_placement::owner(key, active members)`. When the member set
//! changes, some buckets change owner; their live state must move exactly once. This module
//! keeps the node's recent views (member sets with the time each was replaced) so a node
//! that has just become a key's owner knows whom to ask for the state: the key's owners in
//! the views it replaced less than a handoff window ago. Pure: no clock, no I/O; times are
//! passed in.

use std::time::{Duration, Instant};

/// How many past views are kept (a burst of changes older than this is history anyway).
const MAX_PAST_VIEWS: usize = 16;

/// Where a key lives according to this node's newest view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locate {
    /// This node owns it; the live state may still be at these nodes (the key's owners
    /// in views replaced within the handoff window, newest first, this node excluded).
    Mine {
        /// Nodes to ask for the state before starting afresh.
        prior: Vec<u64>,
    },
    /// Another node owns it.
    Elsewhere(u64),
    /// Nobody is known to own it: the node has not joined its cluster yet.
    Unowned,
}

/// This node's recent member views.
#[derive(Debug, Clone)]
pub struct ViewHistory {
    node_id: u64,
    current: Vec<u64>,
    /// Replaced views with the moment each stopped being current, oldest first.
    past: Vec<(Vec<u64>, Instant)>,
    /// When this node last entered the view (started, restarted, or came back).
    joined_at: Option<Instant>,
    /// When this node last resumed from a stall (paused, frozen): the others may have
    /// served its keys meanwhile, whatever its own view says.
    stalled_at: Option<Instant>,
}

impl ViewHistory {
    /// An empty history for node `node_id` (an empty view: this node owns everything).
    pub fn new(node_id: u64) -> Self {
        Self {
            node_id,
            current: Vec::new(),
            past: Vec::new(),
            joined_at: None,
            stalled_at: None,
        }
    }

    /// The newest view, sorted.
    pub fn current(&self) -> &[u64] {
        &self.current
    }

    /// Records `members` as the newest view (at `now`); returns whether it changed.
    pub fn record(&mut self, mut members: Vec<u64>, now: Instant) -> bool {
        members.sort_unstable();
        members.dedup();
        if members == self.current {
            return false;
        }
        let was_in = self.current.contains(&self.node_id);
        let old = std::mem::replace(&mut self.current, members);
        if !was_in && self.current.contains(&self.node_id) {
            self.joined_at = Some(now);
        }
        self.past.push((old, now));
        if self.past.len() > MAX_PAST_VIEWS {
            self.past.remove(0);
        }
        true
    }

    /// Records that this node resumed at `now` from a stall: for a window, every other
    /// member may hold state for any key it owns.
    pub fn record_stall(&mut self, now: Instant) {
        self.stalled_at = Some(now);
    }

    /// Whether this node is one of the owners in its newest view (or the view is empty:
    /// a node on its own owns everything).
    pub fn owns_anything(&self) -> bool {
        self.current.is_empty() || self.current.contains(&self.node_id)
    }

    /// The owner of `key` in the newest view (this node when the view is empty).
    pub fn owner(&self, key: &str) -> u64 {
        colony_placement::owner(key.as_bytes(), &self.current).unwrap_or(self.node_id)
    }

    /// The successor of `key` (who keeps its first replica) in the newest view, if not
    /// this node.
    pub fn successor(&self, key: &str) -> Option<u64> {
        colony_placement::replica(key.as_bytes(), &self.current).filter(|n| *n != self.node_id)
    }

    /// The nodes that keep `key`'s replicas in the newest view: the `count` members that
    /// follow its owner in rendezvous order (each becomes the owner when those ranked
    /// before it are gone), without this node.
    pub fn replica_holders(&self, key: &str, count: usize) -> Vec<u64> {
        if count == 1 {
            // The common case, allocation free.
            return self.successor(key).into_iter().collect();
        }
        colony_placement::ranked(key.as_bytes(), &self.current)
            .into_iter()
            .skip(1)
            .take(count)
            .filter(|n| *n != self.node_id)
            .collect()
    }

    /// Where `key` lives, and, when here, who may still hold its state: its owners in
    /// the views replaced within `window` before `now`.
    pub fn locate(&self, key: &str, now: Instant, window: Duration) -> Locate {
        let owner = self.owner(key);
        if owner != self.node_id {
            return Locate::Elsewhere(owner);
        }
        let mut prior = Vec::new();
        // A node that just entered the view (a restart has no earlier view to go by): the
        // key's owner while it was away is the next in rendezvous order among the members
        // that were there meanwhile. Which those were this node cannot tell (another
        // member may have restarted with it and rank next while holding nothing), so it
        // asks every other member in rendezvous order: the first who holds the state
        // answers with it.
        if self
            .joined_at
            .is_some_and(|t| now.saturating_duration_since(t) <= window)
        {
            let mut others: Vec<u64> = self
                .current
                .iter()
                .copied()
                .filter(|n| *n != self.node_id)
                .collect();
            while let Some(o) = colony_placement::owner(key.as_bytes(), &others) {
                prior.push(o);
                others.retain(|n| *n != o);
            }
        }
        // Just resumed from a stall: any other member may have served the key meanwhile.
        if self
            .stalled_at
            .is_some_and(|t| now.saturating_duration_since(t) <= window)
        {
            for n in &self.current {
                if *n != self.node_id && !prior.contains(n) {
                    prior.push(*n);
                }
            }
        }
        for (view, replaced_at) in self.past.iter().rev() {
            if now.saturating_duration_since(*replaced_at) > window {
                break;
            }
            if let Some(o) = colony_placement::owner(key.as_bytes(), view) {
                if o != self.node_id && !prior.contains(&o) {
                    prior.push(o);
                }
            }
        }
        Locate::Mine { prior }
    }

    /// Whether any view was replaced within `window` before `now` (while none was, every
    /// key this node owns has no prior owner to ask).
    pub fn changed_within(&self, now: Instant, window: Duration) -> bool {
        self.past
            .last()
            .is_some_and(|(_, at)| now.saturating_duration_since(*at) <= window)
    }

    /// Whether this node is within `window` of a view change, of entering the view, or of
    /// resuming from a stall: while it is, another member may hold live state for a key
    /// it owns, so a key must not be started while such a member cannot be asked.
    pub fn unsettled(&self, now: Instant, window: Duration) -> bool {
        let recent =
            |t: Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) <= window);
        self.changed_within(now, window) || recent(self.joined_at) || recent(self.stalled_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(10);

    fn key_owned_by(owner: u64, members: &[u64], not_owned_by: Option<(u64, &[u64])>) -> String {
        (0..10_000)
            .map(|i| format!("k{i}"))
            .find(|k| {
                colony_placement::owner(k.as_bytes(), members) == Some(owner)
                    && not_owned_by.is_none_or(|(n, view)| {
                        colony_placement::owner(k.as_bytes(), view) == Some(n)
                    })
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_lone_node_owns_everything_with_nobody_to_ask() {
        let h = ViewHistory::new(1);
        assert!(h.owns_anything());
        assert_eq!(h.owner("x"), 1);
        assert_eq!(
            h.locate("x", Instant::now(), W),
            Locate::Mine { prior: vec![] }
        );
        assert_eq!(h.successor("x"), None);
        assert_eq!(h.replica_holders("x", 2), Vec::<u64>::new());
    }

    #[test]
    fn replicas_go_to_the_members_that_follow_the_owner_in_rendezvous_order() {
        let mut h = ViewHistory::new(1);
        assert!(h.record(vec![1, 2, 3, 4, 5], Instant::now()));
        for i in 0..50 {
            let k = format!("k{i}");
            let ranked = colony_placement::ranked(k.as_bytes(), &[1, 2, 3, 4, 5]);
            let expect = |n: usize| -> Vec<u64> {
                ranked[1..=n].iter().copied().filter(|x| *x != 1).collect()
            };
            assert_eq!(h.replica_holders(&k, 1), expect(1), "{k}");
            assert_eq!(h.replica_holders(&k, 2), expect(2), "{k}");
            // Asking for more holders than there are members gives every other member.
            assert_eq!(h.replica_holders(&k, 9), expect(4), "{k}");
        }
    }

    #[test]
    fn after_a_join_the_new_owner_asks_the_old_one_within_the_window() {
        let t0 = Instant::now();
        let mut h = ViewHistory::new(3);
        assert!(h.record(vec![2, 1], t0));
        assert!(
            !h.record(vec![1, 2], t0),
            "same set, other order: no change"
        );
        assert!(!h.owns_anything(), "node 3 is not active yet");
        assert!(h.record(vec![1, 2, 3], t0 + Duration::from_secs(1)));
        // A key that moved from 1 to 3.
        let k = key_owned_by(3, &[1, 2, 3], Some((1, &[1, 2])));
        assert!(!k.is_empty());
        let soon = t0 + Duration::from_secs(2);
        // The old owner first; then, in rendezvous order, every other member (a node that
        // just entered the view cannot tell who held the key meanwhile).
        assert_eq!(h.locate(&k, soon, W), Locate::Mine { prior: vec![1, 2] });
        assert!(h.changed_within(soon, W));
        // After the window nobody is asked.
        let later = t0 + Duration::from_secs(30);
        assert_eq!(h.locate(&k, later, W), Locate::Mine { prior: vec![] });
        assert!(!h.changed_within(later, W));
        // A key owned elsewhere.
        let other = key_owned_by(2, &[1, 2, 3], None);
        assert_eq!(h.locate(&other, soon, W), Locate::Elsewhere(2));
    }

    #[test]
    fn a_draining_node_owns_nothing_and_points_at_the_new_owners() {
        let t0 = Instant::now();
        let mut h = ViewHistory::new(3);
        h.record(vec![1, 2, 3], t0);
        h.record(vec![1, 2], t0 + Duration::from_secs(1));
        assert!(!h.owns_anything());
        let k = key_owned_by(3, &[1, 2, 3], None);
        let now_owner = colony_placement::owner(k.as_bytes(), &[1, 2]).unwrap_or(0);
        assert_eq!(
            h.locate(&k, t0 + Duration::from_secs(2), W),
            Locate::Elsewhere(now_owner)
        );
    }

    #[test]
    fn a_restarted_node_asks_who_held_its_keys_while_it_was_away() {
        // A fresh process sees the full view at once: no earlier view to go by.
        let t0 = Instant::now();
        let mut h = ViewHistory::new(3);
        h.record(vec![1, 2, 3], t0);
        let k = key_owned_by(3, &[1, 2, 3], None);
        let interim = colony_placement::owner(k.as_bytes(), &[1, 2]).unwrap_or(0);
        let last = if interim == 1 { 2 } else { 1 };
        assert_eq!(
            h.locate(&k, t0 + Duration::from_secs(1), W),
            Locate::Mine {
                prior: vec![interim, last]
            }
        );
        assert_eq!(
            h.locate(&k, t0 + Duration::from_secs(60), W),
            Locate::Mine { prior: vec![] }
        );
    }

    #[test]
    fn two_nodes_restarted_together_still_find_the_interim_owner() {
        // Chaos finding (minority seed 3): nodes 5 and 1 killed together and restarted.
        // For a key of node 5 whose next in rendezvous order is node 1, node 1 held nothing
        // while both were away: the interim owner was the best of 2, 3 and 4. Asking only
        // node 1 started the bucket afresh (a whole extra limit admitted).
        let t0 = Instant::now();
        let mut h = ViewHistory::new(5);
        h.record(vec![1, 2, 3, 4, 5], t0);
        let k = key_owned_by(5, &[1, 2, 3, 4, 5], Some((1, &[1, 2, 3, 4])));
        assert!(!k.is_empty());
        let interim = colony_placement::owner(k.as_bytes(), &[2, 3, 4]).unwrap_or(0);
        match h.locate(&k, t0 + Duration::from_secs(1), W) {
            Locate::Mine { prior } => {
                assert_eq!(prior.first(), Some(&1), "rendezvous order: {prior:?}");
                assert!(prior.contains(&interim), "{prior:?} lacks {interim}");
                assert_eq!(prior.len(), 4, "every other member: {prior:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn after_a_stall_every_other_member_is_asked_within_the_window() {
        let t0 = Instant::now();
        let mut h = ViewHistory::new(1);
        h.record(vec![1, 2, 3], t0);
        let k = key_owned_by(1, &[1, 2, 3], None);
        let later = t0 + Duration::from_secs(60);
        assert_eq!(h.locate(&k, later, W), Locate::Mine { prior: vec![] });
        h.record_stall(later);
        match h.locate(&k, later + Duration::from_secs(1), W) {
            Locate::Mine { mut prior } => {
                prior.sort_unstable();
                assert_eq!(prior, vec![2, 3]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            h.locate(&k, later + Duration::from_secs(30), W),
            Locate::Mine { prior: vec![] }
        );
    }

    #[test]
    fn a_node_is_unsettled_only_within_the_window_of_a_change_a_join_or_a_stall() {
        let t0 = Instant::now();
        let mut h = ViewHistory::new(1);
        h.record(vec![1, 2], t0);
        assert!(h.unsettled(t0 + Duration::from_secs(1), W), "just joined");
        let later = t0 + Duration::from_secs(60);
        assert!(!h.unsettled(later, W));
        h.record_stall(later);
        assert!(
            h.unsettled(later + Duration::from_secs(1), W),
            "just resumed"
        );
        assert!(!h.unsettled(later + Duration::from_secs(30), W));
        h.record(vec![1, 2, 3], later + Duration::from_secs(40));
        assert!(
            h.unsettled(later + Duration::from_secs(41), W),
            "view changed"
        );
    }

    #[test]
    fn prior_owners_are_newest_first_and_distinct() {
        let t0 = Instant::now();
        let mut h = ViewHistory::new(9);
        h.record(vec![1], t0);
        h.record(vec![2], t0 + Duration::from_millis(10));
        h.record(vec![1], t0 + Duration::from_millis(20));
        h.record(vec![9], t0 + Duration::from_millis(30));
        assert_eq!(
            h.locate("k", t0 + Duration::from_millis(40), W),
            Locate::Mine { prior: vec![1, 2] }
        );
        for i in 0..40u64 {
            h.record(vec![9, 100 + i], t0 + Duration::from_millis(40 + i));
        }
        assert!(h.past.len() <= MAX_PAST_VIEWS);
    }
}
