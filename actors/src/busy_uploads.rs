//! A process-local set of the resumable uploads a request is writing to right now.

use std::{collections::HashSet, sync::Mutex};

use uuid::Uuid;

/// Uploads with a request writing to them right now (in this process). A second
/// writer is refused rather than queued: tus clients re-read the offset and retry.
#[derive(Debug, Default)]
pub struct BusyUploads(Mutex<HashSet<Uuid>>);

pub struct BusyGuard<'a> {
    set: &'a BusyUploads,
    id: Uuid,
}

impl BusyUploads {
    pub(crate) fn claim(&self, id: Uuid) -> Option<BusyGuard<'_>> {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        set.insert(id).then_some(BusyGuard { set: self, id })
    }
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        let mut set = self.set.0.lock().unwrap_or_else(|e| e.into_inner());
        set.remove(&self.id);
    }
}
