//! Sensor sources. Each reads one kind of sensor and knows nothing of steps, Python or threads.

pub mod cpu_estimate;
pub mod nvml;
pub mod process_share;
pub mod rapl;
pub mod synthetic;

use crate::channel::{ChannelSpec, Sample};

pub const SOURCE_NVML: &str = "nvml";
pub const SOURCE_RAPL: &str = "rapl";
pub const SOURCE_CPU_ESTIMATE: &str = "cpu-estimate";
pub const SOURCE_SYNTHETIC: &str = "synthetic";
/// Every source's name, as `Source::name`, `ChannelSpec::source` and Python use it.
pub const SOURCE_NAMES: [&str; 4] = [
    SOURCE_NVML,
    SOURCE_RAPL,
    SOURCE_CPU_ESTIMATE,
    SOURCE_SYNTHETIC,
];

pub trait Source: Send {
    /// `nvml`, `rapl`, `cpu-estimate`, `synthetic`.
    fn name(&self) -> &'static str;

    fn channels(&self) -> &[ChannelSpec];

    /// Reads every channel at `t_ns` into `out` (one sample per channel, in `channels()` order).
    /// Must not block for long: it runs on the sampler thread between deadlines.
    fn read(&mut self, t_ns: u64, out: &mut [Sample]);

    /// Facts for `info()`: which files or devices, which model or TDP and where it came from.
    fn describe(&self) -> Vec<(String, String)>;

    /// How often this source is worth reading, given the sampler's period and the slowest
    /// observed update period of its channels (None until seen). Reading faster than a sensor
    /// changes costs CPU and adds nothing. Default: the sampler's period.
    fn read_interval_ns(
        &self,
        sampler_period_ns: u64,
        _observed_update_period_ns: Option<f64>,
    ) -> u64 {
        sampler_period_ns
    }
}
