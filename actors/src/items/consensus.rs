//! Review consensus (issue 6's rule, Common Voice's when N = 2): with N decisions
//! required, an item is approved when approvals ≥ N and approvals > rejections, turned
//! down when rejections ≥ N and rejections > approvals, and otherwise waits for another
//! reviewer. A turned-down item goes back to its contributor for rework until the
//! project's rework rounds are used up; then it is rejected for good.
//!
//! Pure, so the table is tested here; the review transitions (a later commit) call it
//! inside their transaction with the counts of the current round.

/// Where the decisions of one round leave an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not decided yet: another reviewer is needed.
    Pending,
    Approved,
    /// Back to the contributor with the reasons (a rework round is used).
    ChangesRequested,
    /// Turned down with no rework round left.
    Rejected,
}

/// The verdict for `approvals` and `rejections` in the current round, with `required`
/// decisions needed and `rework_rounds_used` of `max_rework_rounds` already spent.
pub fn verdict(
    approvals: u32,
    rejections: u32,
    required: u32,
    rework_rounds_used: u32,
    max_rework_rounds: u32,
) -> Verdict {
    let required = required.max(1);
    if approvals >= required && approvals > rejections {
        Verdict::Approved
    } else if rejections >= required && rejections > approvals {
        if rework_rounds_used < max_rework_rounds {
            Verdict::ChangesRequested
        } else {
            Verdict::Rejected
        }
    } else {
        Verdict::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::{Verdict::*, verdict};

    #[test]
    fn the_consensus_table() {
        // (approvals, rejections, required) → verdict, with rework rounds left.
        let table = [
            // N = 1: the first decision settles it.
            (0, 0, 1, Pending),
            (1, 0, 1, Approved),
            (0, 1, 1, ChangesRequested),
            // N = 2 (Common Voice): a tie waits for a third voice.
            (1, 0, 2, Pending),
            (0, 1, 2, Pending),
            (1, 1, 2, Pending),
            (2, 0, 2, Approved),
            (2, 1, 2, Approved),
            (0, 2, 2, ChangesRequested),
            (1, 2, 2, ChangesRequested),
            (2, 2, 2, Pending),
            (3, 2, 2, Approved),
            // N = 3.
            (2, 0, 3, Pending),
            (3, 0, 3, Approved),
            (3, 3, 3, Pending),
            (3, 4, 3, ChangesRequested),
            (4, 3, 3, Approved),
            (2, 3, 3, ChangesRequested),
        ];
        for (approvals, rejections, required, expected) in table {
            assert_eq!(
                verdict(approvals, rejections, required, 0, 3),
                expected,
                "{approvals} approvals, {rejections} rejections, N = {required}"
            );
        }
    }

    #[test]
    fn rework_rounds_run_out() {
        assert_eq!(verdict(0, 1, 1, 2, 3), ChangesRequested);
        assert_eq!(verdict(0, 1, 1, 3, 3), Rejected);
        assert_eq!(verdict(0, 1, 1, 0, 0), Rejected, "no rework allowed");
        // Approval does not depend on rounds.
        assert_eq!(verdict(1, 0, 1, 3, 3), Approved);
    }
}
