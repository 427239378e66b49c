//! Black-box tests: each spawns the real server on 127.0.0.1:0 with its own database
//! (a temporary SQLite file, or a fresh schema on the PostgreSQL at
//! `TEST_DATABASE_URL`) and talks HTTP to it. Most behaviour tests run on both
//! backends through `backend_tests!`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
#[path = "../../benches/common/pdf.rs"]
mod pdf;
mod smtp_sink;
mod tcp_proxy;

mod account_recovery;
mod admin;
mod analytics;
mod api_tokens;
mod auth;
mod authz_matrix;
mod child_server;
mod cli;
mod contract;
mod crash;
mod db_outage;
mod deadlines;
mod downloads;
mod error_contract;
mod exports;
mod google;
mod google_signin;
mod group_commit;
mod hostile_files;
mod idempotency;
mod items;
mod job_queue;
mod labels;
mod log_secrets;
mod login_throttle;
mod mail;
mod middleware;
mod nodes;
mod openapi;
mod passkeys;
mod passkeys_browser;
mod passwords;
mod plans;
mod processing;
mod projects;
mod rate_limit;
mod readiness;
mod review;
mod rework;
mod schema_contract;
mod sessions;
mod startup;
mod stop_under_load;
mod upload_admission;
mod uploads;
mod webhooks;
mod worker_crash;
