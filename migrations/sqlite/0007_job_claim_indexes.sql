-- The claim looks for queued jobs that are due, or running ones whose lease ran out.
-- Partial indexes keep that lookup on live jobs only: finished jobs (which accumulate)
-- are never read by a claim. Same file name and meaning in both migration folders.

CREATE INDEX jobs_queued_due_idx ON jobs (kind, run_at) WHERE state = 'queued';
CREATE INDEX jobs_running_lease_idx ON jobs (kind, lease_until) WHERE state = 'running';
