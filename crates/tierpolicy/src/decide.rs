//! Which buckets are charged when, and which decision a response reports: the choices
//! the middleware makes between its calls to the limiter.

use colony_ratelimit::{Decision, Status};

/// The order in which to charge a request's `cost` to several policies, given a peek
/// (`hits: 0`) at each (`None`: no answer). First the policies that cannot take the cost
/// (too little left, over the limit, or unknown), so that a rejection there consumes
/// nothing; then the others. Each phase lists policy indexes in ascending order.
///
/// With one policy no peek is needed: its single check consumes nothing when it refuses.
pub fn charge_order(peeked: &[Option<Decision>], cost: u64) -> Vec<Vec<usize>> {
    let (short, fine): (Vec<usize>, Vec<usize>) = (0..peeked.len()).partition(|&i| {
        peeked[i]
            .as_ref()
            .is_none_or(|d| d.remaining < cost || d.status == Status::OverLimit)
    });
    vec![short, fine]
}

/// Of the `(policy index, decision)` pairs of one charge, the policy that refused with the
/// longest wait (the first of equals), if any refused: the one a 429 reports, since a
/// retry before it resets is refused again.
pub fn longest_wait(decisions: &[(usize, Decision)]) -> Option<usize> {
    let mut worst: Option<(usize, u64)> = None;
    for &(i, d) in decisions {
        if d.status == Status::OverLimit && worst.is_none_or(|(_, wait)| wait < d.reset_after_ms) {
            worst = Some((i, d.reset_after_ms));
        }
    }
    worst.map(|(i, _)| i)
}

/// Index of the most constrained decision: lowest `remaining / limit`.
pub fn most_constrained(decisions: &[Decision]) -> Option<usize> {
    (0..decisions.len()).min_by(|&a, &b| {
        let (x, y) = (&decisions[a], &decisions[b]);
        // remaining_x / limit_x vs remaining_y / limit_y without floats.
        (u128::from(x.remaining) * u128::from(y.limit.max(1)))
            .cmp(&(u128::from(y.remaining) * u128::from(x.limit.max(1))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_constrained_is_lowest_remaining_fraction() {
        let d = |limit, remaining| Decision {
            status: Status::UnderLimit,
            limit,
            remaining,
            reset_after_ms: 0,
        };
        assert_eq!(most_constrained(&[d(100, 50), d(5000, 100)]), Some(1));
        assert_eq!(most_constrained(&[d(100, 1), d(5000, 100)]), Some(0));
        assert_eq!(most_constrained(&[]), None);
    }

    #[test]
    fn short_buckets_are_charged_first_and_the_longest_wait_is_reported() {
        let d = |status, remaining, reset_after_ms| Decision {
            status,
            limit: 10,
            remaining,
            reset_after_ms,
        };
        let peeked = [
            Some(d(Status::UnderLimit, 5, 0)),
            Some(d(Status::UnderLimit, 1, 0)),
            None,
            Some(d(Status::OverLimit, 9, 0)),
        ];
        assert_eq!(charge_order(&peeked, 2), vec![vec![1, 2, 3], vec![0]]);
        let charged = [
            (1, d(Status::OverLimit, 0, 300)),
            (2, d(Status::UnderLimit, 3, 900)),
            (3, d(Status::OverLimit, 0, 700)),
            (4, d(Status::OverLimit, 0, 700)),
        ];
        assert_eq!(longest_wait(&charged), Some(3));
        assert_eq!(longest_wait(&charged[1..2]), None);
    }
}
