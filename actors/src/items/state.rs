//! The item state machine, in one place. Every change of an item's `status` goes
//! through [`next`]: the store's conditional update then applies it only from the
//! states this table allows, so a stale worker or a lost race changes nothing.
//! (Review, in a later issue, adds its states and events here.)

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
        ItemEvent::TextEdited => (&[Ready, ProcessingFailed], Ready),
        ItemEvent::Reprocess => (&[Ready, ProcessingFailed], Uploaded),
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
        for event in [
            ItemEvent::ProcessingStarted,
            ItemEvent::ProcessingSucceeded,
            ItemEvent::ProcessingFailed,
            ItemEvent::TextEdited,
            ItemEvent::Reprocess,
        ] {
            assert!(
                next(event).0.len() <= 4,
                "the store binds at most four states"
            );
        }
    }
}
