//! The item state machine, in one place. Every change of an item's `status` goes
//! through [`next`]: the store's conditional update then applies it only from the
//! states this table allows, so a stale worker or a lost race changes nothing.
//! Review adds submission, the three verdicts and the rework loop.

use super::ItemStatus;

/// What happens to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemEvent {
    /// A worker took its processing job.
    ProcessingStarted,
    /// The engine produced text.
    ProcessingSucceeded,
    /// The engine could not produce text (with a reason), or the job gave up.
    ProcessingFailed,
    /// A person wrote or corrected the text.
    TextEdited,
    /// A project admin asked for processing again.
    Reprocess,
    /// The contributor replaced the file during rework: it is processed again.
    FileReplaced,
    /// The contributor (or an admin) sent the item to review, or back to it after rework.
    Submitted,
    /// Reviewers agreed to accept it.
    ReviewApproved,
    /// Reviewers turned it down with a rework round left.
    ChangesRequested,
    /// Reviewers turned it down with no rework round left.
    ReviewRejected,
}

/// The states an event may happen in, and the state it leads to.
pub fn next(event: ItemEvent) -> (&'static [ItemStatus], ItemStatus) {
    use ItemStatus::*;
    match event {
        // A job may be taken again after a crash (lease expired): processing → processing.
        ItemEvent::ProcessingStarted => (&[Uploaded, Processing], Processing),
        ItemEvent::ProcessingSucceeded => (&[Uploaded, Processing], Ready),
        ItemEvent::ProcessingFailed => (&[Uploaded, Processing], ProcessingFailed),
        // Text can be written by hand once processing ended either way (no engine for
        // recordings is a failure with a reason, and a person then transcribes).
        // Correcting the text of an item sent back for changes makes it ready to resubmit.
        ItemEvent::TextEdited => (&[Ready, ProcessingFailed, ChangesRequested], Ready),
        ItemEvent::Reprocess => (&[Ready, ProcessingFailed, ChangesRequested], Uploaded),
        ItemEvent::FileReplaced => (&[Ready, ProcessingFailed, ChangesRequested], Uploaded),
        // Resubmitting unchanged is allowed: the contributor may disagree with the reasons.
        ItemEvent::Submitted => (&[Ready, ChangesRequested], PendingReview),
        ItemEvent::ReviewApproved => (&[PendingReview], Approved),
        ItemEvent::ChangesRequested => (&[PendingReview], ChangesRequested),
        ItemEvent::ReviewRejected => (&[PendingReview], Rejected),
    }
}

/// `next` as the strings the store compares.
pub fn next_strs(event: ItemEvent) -> (Vec<&'static str>, &'static str) {
    let (from, to) = next(event);
    (from.iter().map(|s| s.as_str()).collect(), to.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processing_ends_in_ready_or_failed_and_can_restart() {
        let (from, to) = next(ItemEvent::ProcessingStarted);
        assert!(from.contains(&ItemStatus::Uploaded) && to == ItemStatus::Processing);
        assert_eq!(next(ItemEvent::ProcessingSucceeded).1, ItemStatus::Ready);
        assert_eq!(
            next(ItemEvent::ProcessingFailed).1,
            ItemStatus::ProcessingFailed
        );
        // Not while a job may be running.
        assert!(
            !next(ItemEvent::Reprocess)
                .0
                .contains(&ItemStatus::Processing)
        );
        assert!(
            !next(ItemEvent::TextEdited)
                .0
                .contains(&ItemStatus::Uploaded)
        );
        for event in ALL_EVENTS {
            assert!(
                next(event).0.len() <= 4,
                "the store binds at most four states"
            );
        }
    }

    const ALL_EVENTS: [ItemEvent; 10] = [
        ItemEvent::ProcessingStarted,
        ItemEvent::ProcessingSucceeded,
        ItemEvent::ProcessingFailed,
        ItemEvent::TextEdited,
        ItemEvent::Reprocess,
        ItemEvent::FileReplaced,
        ItemEvent::Submitted,
        ItemEvent::ReviewApproved,
        ItemEvent::ChangesRequested,
        ItemEvent::ReviewRejected,
    ];

    #[test]
    fn final_states_have_no_way_out() {
        for event in ALL_EVENTS {
            let (from, _) = next(event);
            assert!(!from.contains(&ItemStatus::Approved), "{event:?}");
            assert!(!from.contains(&ItemStatus::Rejected), "{event:?}");
        }
    }

    #[test]
    fn review_runs_from_ready_through_pending_to_a_verdict_and_back() {
        assert_eq!(next(ItemEvent::Submitted).1, ItemStatus::PendingReview);
        assert!(next(ItemEvent::Submitted).0.contains(&ItemStatus::Ready));
        assert!(
            next(ItemEvent::Submitted)
                .0
                .contains(&ItemStatus::ChangesRequested)
        );
        for verdict in [
            ItemEvent::ReviewApproved,
            ItemEvent::ChangesRequested,
            ItemEvent::ReviewRejected,
        ] {
            assert_eq!(next(verdict).0, &[ItemStatus::PendingReview]);
        }
        // Nothing edits an item under review.
        for event in [
            ItemEvent::TextEdited,
            ItemEvent::Reprocess,
            ItemEvent::FileReplaced,
        ] {
            assert!(!next(event).0.contains(&ItemStatus::PendingReview));
        }
        // Rework: text correction or a new file, then submit again.
        assert!(
            next(ItemEvent::TextEdited)
                .0
                .contains(&ItemStatus::ChangesRequested)
        );
        assert_eq!(next(ItemEvent::FileReplaced).1, ItemStatus::Uploaded);
    }
}
