//! Which node runs an evaluation: the first choice at submission, and the leader's
//! reassignments when an owner is gone or draining. Pure.

use colony_core::evaluation::EvaluationRecord;

/// The node to run a new evaluation: rendezvous of its id over the active members (this
/// node when it knows none, e.g. a single node that is still joining).
pub fn initial_owner(id: &str, active: &[u64], this_node: u64) -> u64 {
    colony_placement::owner(id.as_bytes(), active).unwrap_or(this_node)
}

/// One reassignment for the leader to propose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    /// Evaluation id.
    pub id: String,
    /// The epoch being replaced.
    pub epoch: u64,
    /// The owner being replaced.
    pub from: u64,
    /// The new owner.
    pub to: u64,
}

/// Reassignments for every unfinished evaluation whose owner cannot run it: not among
/// the `runnable` nodes (active and alive; a draining node is not runnable). The new
/// owner is the rendezvous choice among the runnable nodes. None without runnable nodes.
pub fn reassignments<'a>(
    evaluations: impl IntoIterator<Item = &'a EvaluationRecord>,
    runnable: &[u64],
) -> Vec<Reassignment> {
    if runnable.is_empty() {
        return Vec::new();
    }
    evaluations
        .into_iter()
        .filter(|r| !r.status.is_terminal() && !runnable.contains(&r.owner))
        .filter_map(|r| {
            colony_placement::owner(r.id.as_bytes(), runnable).map(|to| Reassignment {
                id: r.id.clone(),
                epoch: r.epoch,
                from: r.owner,
                to,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use colony_core::evaluation::EvaluationStatus;

    fn rec(id: &str, owner: u64, status: EvaluationStatus) -> EvaluationRecord {
        EvaluationRecord {
            id: id.into(),
            tenant: "t".into(),
            total: 1,
            status,
            owner,
            epoch: 3,
            done: Default::default(),
            failed: 0,
            cached: 0,
            usage: Default::default(),
            error: None,
            created_at_ms: 0,
            updated_at_ms: 0,
            finished_at_ms: None,
        }
    }

    #[test]
    fn only_unfinished_evaluations_of_gone_owners_move() {
        let evals = [
            rec("a", 1, EvaluationStatus::Running),
            rec("b", 2, EvaluationStatus::Running),
            rec("c", 2, EvaluationStatus::Completed),
            rec("d", 2, EvaluationStatus::Queued),
        ];
        let moves = reassignments(&evals, &[1, 3]);
        let ids: Vec<&str> = moves.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["b", "d"]);
        assert!(moves
            .iter()
            .all(|m| m.from == 2 && [1, 3].contains(&m.to) && m.epoch == 3));
        assert!(
            reassignments(&evals, &[]).is_empty(),
            "nobody to move them to"
        );
    }

    #[test]
    fn the_first_owner_is_a_rendezvous_choice() {
        assert_eq!(initial_owner("e", &[], 9), 9);
        let o = initial_owner("e", &[1, 2, 3], 9);
        assert!([1, 2, 3].contains(&o));
        assert_eq!(
            o,
            initial_owner("e", &[3, 2, 1], 9),
            "order does not matter"
        );
    }
}
