//! A Wing & Gong linearizability checker (with Lowe's memoisation of visited
//! configurations) for a single read/write register.
//!
//! The history is a set of operations with an invocation time and, when the client saw
//! an answer, a return time. A write that failed for certain is left out by the caller;
//! a write whose outcome is unknown (timeout, 5xx, connection reset) has no return time:
//! it may take effect at any point after its invocation, or never. A read that failed
//! says nothing and is left out too.
//!
//! The search linearizes one operation at a time: any operation not yet linearized whose
//! invocation is not after the earliest return among the pending operations may come next
//! (nothing returned before it was invoked is still pending), if the register model
//! accepts it (a read must return the current value). A configuration (set of linearized
//! operations, register value) already explored is not explored again. The history is
//! linearizable when every operation with a return time has been linearized.

use std::collections::{HashMap, HashSet};

/// One register operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegOp {
    /// Caller's identifier (reported on failure).
    pub id: usize,
    /// Invocation time (any monotonic unit, e.g. µs).
    pub invoke: u64,
    /// Return time; `None` when the outcome is unknown (only meaningful for writes).
    pub ret: Option<u64>,
    /// What it did.
    pub kind: RegKind,
}

/// A register operation's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegKind {
    /// Wrote this value.
    Write(String),
    /// Read this value.
    Read(String),
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A linearization exists.
    Linearizable,
    /// None exists; `stuck` lists the operations (ids) that could not be placed after the
    /// longest linearizable prefix found (`prefix` operations long).
    NotLinearizable {
        /// Length of the longest linearizable prefix.
        prefix: usize,
        /// Ids of the pending operations with a return time at that point.
        stuck: Vec<usize>,
    },
    /// The search gave up after `steps` configurations.
    Unknown {
        /// Configurations explored.
        steps: usize,
    },
}

/// Checks `ops` against a register that starts as `init`; gives up after `max_steps`
/// explored configurations.
pub fn check_register(init: &str, ops: &[RegOp], max_steps: usize) -> Verdict {
    // A write of unknown outcome whose value no read returned can be dropped: in any
    // linearization containing it, removing it leaves every read valid (no read is
    // between it and the next write, since such a read would have returned its value).
    // Values are compared as strings.
    let read_values: HashSet<&str> = ops
        .iter()
        .filter_map(|o| match &o.kind {
            RegKind::Read(v) => Some(v.as_str()),
            RegKind::Write(_) => None,
        })
        .collect();
    let mut ops: Vec<&RegOp> = ops
        .iter()
        .filter(|o| match (&o.kind, o.ret) {
            (RegKind::Write(v), None) => read_values.contains(v.as_str()),
            (RegKind::Read(_), None) => false,
            _ => true,
        })
        .collect();
    ops.sort_by_key(|o| (o.invoke, o.ret.unwrap_or(u64::MAX)));
    let n = ops.len();
    // Interned values: 0 is `init`.
    let mut values: HashMap<&str, u32> = HashMap::new();
    values.insert(init, 0);
    let mut coded: Vec<(bool, u32)> = Vec::with_capacity(ops.len());
    for o in &ops {
        let (is_write, v) = match &o.kind {
            RegKind::Write(v) => (true, v.as_str()),
            RegKind::Read(v) => (false, v.as_str()),
        };
        let next = values.len() as u32;
        coded.push((is_write, *values.entry(v).or_insert(next)));
    }
    let finite: usize = ops.iter().filter(|o| o.ret.is_some()).count();
    let words = n.div_ceil(64).max(1);

    type Config = (Vec<u64>, u32);
    let mut visited: HashSet<Config> = HashSet::new();
    let mut stack: Vec<(Config, usize, usize)> = vec![((vec![0; words], 0), 0, 0)];
    visited.insert((vec![0; words], 0));
    let mut best_prefix = 0usize;
    let mut best_set: Vec<u64> = vec![0; words];
    let mut steps = 0usize;
    let is_set = |set: &[u64], i: usize| set[i / 64] & (1u64 << (i % 64)) != 0;

    while let Some(((set, value), linearized, finite_done)) = stack.pop() {
        steps += 1;
        if steps > max_steps {
            return Verdict::Unknown { steps };
        }
        if finite_done == finite {
            return Verdict::Linearizable;
        }
        if linearized > best_prefix {
            best_prefix = linearized;
            best_set.clone_from(&set);
        }
        let min_ret = (0..n)
            .filter(|&i| !is_set(&set, i))
            .filter_map(|i| ops[i].ret)
            .min()
            .unwrap_or(u64::MAX);
        for i in 0..n {
            if ops[i].invoke > min_ret {
                break;
            }
            if is_set(&set, i) {
                continue;
            }
            let (is_write, v) = coded[i];
            let next_value = if is_write {
                v
            } else if v == value {
                value
            } else {
                continue;
            };
            let mut next = set.clone();
            next[i / 64] |= 1u64 << (i % 64);
            let config = (next, next_value);
            if visited.insert(config.clone()) {
                let done = finite_done + usize::from(ops[i].ret.is_some());
                stack.push((config, linearized + 1, done));
            }
        }
    }
    let stuck = (0..n)
        .filter(|&i| !is_set(&best_set, i) && ops[i].ret.is_some())
        .map(|i| ops[i].id)
        .take(8)
        .collect();
    Verdict::NotLinearizable {
        prefix: best_prefix,
        stuck,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: usize, invoke: u64, ret: Option<u64>, v: &str) -> RegOp {
        RegOp {
            id,
            invoke,
            ret,
            kind: RegKind::Write(v.into()),
        }
    }

    fn r(id: usize, invoke: u64, ret: u64, v: &str) -> RegOp {
        RegOp {
            id,
            invoke,
            ret: Some(ret),
            kind: RegKind::Read(v.into()),
        }
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = vec![
            w(0, 0, Some(10), "a"),
            r(1, 11, 20, "a"),
            w(2, 21, Some(30), "b"),
            r(3, 31, 40, "b"),
        ];
        assert_eq!(check_register("x", &h, 10_000), Verdict::Linearizable);
    }

    #[test]
    fn concurrent_reads_may_see_either_value() {
        // The write of b overlaps both reads: one sees a, the other b, in either order
        // consistent with real time (the read of a is invoked before the read of b returns).
        let h = vec![
            w(0, 0, Some(10), "a"),
            w(1, 20, Some(60), "b"),
            r(2, 25, 40, "b"),
            r(3, 30, 50, "a"),
        ];
        // r3 returned a after r2 returned b? r2 returned at 40, r3 invoked at 30: they
        // overlap, so a (r3) then b (r2) is a valid order.
        assert_eq!(check_register("x", &h, 10_000), Verdict::Linearizable);
    }

    #[test]
    fn stale_read_is_not_linearizable() {
        // b was acknowledged at 30; a read invoked afterwards returns a: stale.
        let h = vec![
            w(0, 0, Some(10), "a"),
            w(1, 20, Some(30), "b"),
            r(2, 40, 50, "a"),
        ];
        match check_register("x", &h, 10_000) {
            Verdict::NotLinearizable { stuck, .. } => assert!(stuck.contains(&2), "{stuck:?}"),
            other => panic!("expected not linearizable, got {other:?}"),
        }
    }

    #[test]
    fn reads_going_back_in_time_are_not_linearizable() {
        // Two sequential reads during one long write: b then a is impossible.
        let h = vec![
            w(0, 0, Some(10), "a"),
            w(1, 20, Some(100), "b"),
            r(2, 30, 40, "b"),
            r(3, 50, 60, "a"),
        ];
        assert!(matches!(
            check_register("x", &h, 10_000),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn unknown_writes_may_or_may_not_take_effect() {
        // The write of c timed out; a later read sees it: it took effect.
        let took = vec![
            w(0, 0, Some(10), "a"),
            w(1, 20, None, "c"),
            r(2, 500, 510, "c"),
        ];
        assert_eq!(check_register("x", &took, 10_000), Verdict::Linearizable);
        // It never took effect: reads keep seeing a.
        let lost = vec![
            w(0, 0, Some(10), "a"),
            w(1, 20, None, "c"),
            r(2, 500, 510, "a"),
        ];
        assert_eq!(check_register("x", &lost, 10_000), Verdict::Linearizable);
        // But not before it was invoked.
        let early = vec![
            w(0, 0, Some(10), "a"),
            r(2, 11, 15, "c"),
            w(1, 20, None, "c"),
        ];
        assert!(matches!(
            check_register("x", &early, 10_000),
            Verdict::NotLinearizable { .. }
        ));
        // And not flip back and forth: c, then a again without a write of a.
        let flip = vec![
            w(0, 0, Some(10), "a"),
            w(1, 20, None, "c"),
            r(2, 30, 40, "c"),
            r(3, 50, 60, "a"),
        ];
        assert!(matches!(
            check_register("x", &flip, 10_000),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn the_initial_value_is_readable_until_a_write() {
        let h = vec![r(0, 0, 5, "x"), w(1, 10, Some(20), "a"), r(2, 30, 40, "a")];
        assert_eq!(check_register("x", &h, 10_000), Verdict::Linearizable);
        let bad = vec![r(0, 0, 5, "a"), w(1, 10, Some(20), "a")];
        assert!(matches!(
            check_register("x", &bad, 10_000),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn many_concurrent_operations_finish_quickly() {
        // 3 clients, 600 operations, each write's value read back by the next read.
        let mut h = Vec::new();
        let mut t = 0u64;
        let mut last = "x".to_string();
        for i in 0..200 {
            let v = format!("v{i}");
            h.push(w(3 * i, t, Some(t + 15), &v));
            h.push(r(3 * i + 1, t + 1, t + 14, &last));
            h.push(r(3 * i + 2, t + 16, t + 20, &v));
            last = v;
            t += 21;
        }
        assert_eq!(check_register("x", &h, 1_000_000), Verdict::Linearizable);
    }
}
