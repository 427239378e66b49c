//! The `alta` binary's library: settings, telemetry and startup wiring, shared by the
//! CLI, the black-box tests and the benchmarks.

pub mod cli;
pub mod settings;
pub mod startup;
pub mod telemetry;

/// Choose aws-lc-rs as the process-wide TLS provider before anything opens a TLS
/// connection (several crates in the tree would otherwise disagree and panic).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
