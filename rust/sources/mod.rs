//! Sensor sources. Each reads one kind of sensor and knows nothing of steps, Python or threads.

pub mod cpu_estimate;
pub mod nvml;
pub mod rapl;
pub mod synthetic;

use crate::channel::{ChannelSpec, Sample};

pub trait Source: Send {
    /// `nvml`, `rapl`, `cpu-estimate`, `synthetic`.
    fn name(&self) -> &'static str;

    fn channels(&self) -> &[ChannelSpec];

    /// Reads every channel at `t_ns` into `out` (one sample per channel, in `channels()` order).
    /// Must not block for long: it runs on the sampler thread between deadlines.
    fn read(&mut self, t_ns: u64, out: &mut [Sample]);

    /// Facts for `info()`: which files or devices, which model or TDP and where it came from.
    fn describe(&self) -> Vec<(String, String)>;
}
