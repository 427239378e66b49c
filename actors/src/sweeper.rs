//! The sweeper: removes what a crash can leave behind in the blob store. Uploads
//! received but never committed (`.incoming` files), and blobs whose item row was
//! never committed (a crash between storing the blob and the commit). Only files older
//! than the grace period go, so uploads in flight are never touched.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use uuid::Uuid;

use crate::{deps::Deps, metrics as m, store};

pub enum SweeperMsg {
    Sweep,
}

pub struct Sweeper;

pub struct SweeperState {
    deps: Arc<Deps>,
}

impl Actor for Sweeper {
    type Msg = SweeperMsg;
    type State = SweeperState;
    type Arguments = Arc<Deps>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        deps: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(deps.config.sweep_interval, || SweeperMsg::Sweep);
        let _ = myself.cast(SweeperMsg::Sweep);
        Ok(SweeperState { deps })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SweeperMsg::Sweep => {
                let removed = sweep(&state.deps, state.deps.config.orphan_grace).await;
                if removed > 0 {
                    tracing::info!(removed, "swept orphan upload files");
                }
            }
        }
        Ok(())
    }
}

fn old_enough(path: &Path, grace: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age >= grace)
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// One pass; returns how many files were removed. Public for tests (grace zero).
pub async fn sweep(deps: &Deps, grace: Duration) -> usize {
    let mut removed = 0;
    // Uploads are received locally in both modes.
    for file in files_in(deps.blobs.incoming_dir()) {
        if old_enough(&file, grace) && std::fs::remove_file(&file).is_ok() {
            removed += 1;
        }
    }
    removed += crate::resumable::expire(deps, grace).await;
    removed += sweep_exports(deps, grace).await;
    purge_jobs(deps).await;
    // Failed-login counts older than a day no longer delay anything.
    let day_ago = deps.clock.now() - chrono::Duration::days(1);
    if let Err(err) = store::login_throttle::purge(&deps.db, day_ago).await {
        tracing::warn!(error = %err, "could not purge old login failures");
    }
    // Webhook deliveries that are settled go after `WEBHOOK_DELIVERY_RETENTION_DAYS`.
    let kept = chrono::Duration::from_std(deps.config.webhooks.retention)
        .unwrap_or(chrono::Duration::days(30));
    if let Err(err) =
        store::webhooks::remove_old_deliveries(&deps.db, deps.clock.now() - kept).await
    {
        tracing::warn!(error = %err, "could not remove old webhook deliveries");
    }
    // Orphan blobs are only looked for in a local store. For GCS, listing the bucket
    // is not done yet (the crate's listing is the gRPC `StorageControl`, which the
    // emulator lacks); an orphan object there stays until a later version sweeps it.
    let Some(root) = deps.blobs.local_root() else {
        metrics::counter!(m::ORPHAN_FILES_REMOVED_TOTAL).increment(removed as u64);
        return removed;
    };
    for project_dir in files_in(root).into_iter().filter(|p| p.is_dir()) {
        let Some(project_name) = project_dir.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Ok(project_id) = Uuid::parse_str(project_name) else {
            continue;
        };
        for blob in files_in(&project_dir) {
            let Some(item_id) = blob
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| Uuid::parse_str(n).ok())
            else {
                continue;
            };
            if !old_enough(&blob, grace) {
                continue;
            }
            let key = crate::blob::item_key(project_id, item_id);
            let in_use = match store::items::blob_in_use(&deps.db, item_id, &key).await {
                // An export's file is under the same kind of key.
                Ok(false) => store::exports::blob_in_use(&deps.db, &key).await,
                other => other,
            };
            match in_use {
                Ok(false) => {
                    if std::fs::remove_file(&blob).is_ok() {
                        removed += 1;
                    }
                }
                Ok(true) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "sweep stopped: database unavailable");
                    return removed;
                }
            }
        }
    }
    metrics::counter!(m::ORPHAN_FILES_REMOVED_TOTAL).increment(removed as u64);
    removed
}

/// Exports past their retention go with their files; the parts of exports that no
/// longer run (failed, deleted, or published by another node) go after the grace.
async fn sweep_exports(deps: &Deps, grace: Duration) -> usize {
    let mut removed = 0;
    let now = deps.clock.now();
    match store::exports::expired(&deps.db, now, 100).await {
        Ok(expired) => {
            for (project_id, id) in expired {
                let key = crate::blob::item_key(project_id, id);
                if let Err(err) = deps.blobs.delete(&key).await {
                    tracing::warn!(%key, error = %err, "could not remove an expired export's file");
                    continue;
                }
                match store::exports::delete_expired(&deps.db, id, now).await {
                    Ok(true) => removed += 1,
                    Ok(false) => {}
                    Err(err) => {
                        tracing::warn!(export_id = %id, error = %err, "could not remove an expired export")
                    }
                }
            }
        }
        Err(err) => tracing::warn!(error = %err, "could not look for expired exports"),
    }
    for dir in files_in(deps.blobs.exports_dir()) {
        let Some(id) = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| Uuid::parse_str(n).ok())
        else {
            continue;
        };
        if !old_enough(&dir, grace) {
            continue;
        }
        match store::exports::is_running(&deps.db, id).await {
            Ok(false) => {
                crate::exports::artifact::Parts::remove(&dir).await;
                removed += 1;
            }
            Ok(true) => {}
            Err(err) => {
                tracing::warn!(error = %err, "export sweep stopped: database unavailable");
                break;
            }
        }
    }
    removed
}

/// Delete finished jobs past their retention (the table would otherwise only grow).
async fn purge_jobs(deps: &Deps) {
    let retention = chrono::Duration::from_std(deps.config.jobs.retention)
        .unwrap_or(chrono::Duration::days(14));
    let before = deps.clock.now() - retention;
    loop {
        match store::jobs::purge_done(&deps.db, before, 1000).await {
            Ok(1000) => continue,
            Ok(n) => {
                if n > 0 {
                    tracing::info!(purged = n, "purged finished jobs");
                }
                break;
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not purge finished jobs");
                break;
            }
        }
    }
}
