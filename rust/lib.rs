//! hf-eco2ai's core: sensor sources, a lock-free sampler, energy integration and step
//! resolution. The Python binding (`hf_eco2ai._core`) is behind the `python` feature so that
//! `cargo test` needs no Python.

pub mod boundary_queue;
pub mod channel;
pub mod clock;
pub mod csv_text;
pub mod energy;
pub mod error;
pub mod gradstats;
pub mod sampler;
pub mod sources;
pub mod steps;

#[cfg(feature = "python")]
mod py;
