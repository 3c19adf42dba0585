//! A CPU power estimate where no RAPL counter can be read: TDP scaled by utilisation.
//!
//! P = TDP × (IDLE_FRACTION + (1 − IDLE_FRACTION) × utilisation), utilisation from the
//! aggregate line of /proc/stat over the last interval. Every figure is flagged *estimated*.
//! /proc/stat moves in jiffies (usually 10 ms), so utilisation is recomputed at most every
//! RECOMPUTE_NS and held in between: faster sampling would only read noise.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::channel::{ChannelKind, ChannelSpec, Provenance, Sample};
use crate::error::{CoreError, CoreResult};
use crate::sources::{Source, SOURCE_CPU_ESTIMATE};

/// Share of TDP an idle package still draws; a round figure, documented as an assumption.
pub const IDLE_FRACTION: f64 = 0.1;
const RECOMPUTE_NS: u64 = 100_000_000;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuTimes {
    pub busy: u64,
    pub total: u64,
}

/// Reads the aggregate `cpu` line: idle and iowait count as idle; guest time is already inside
/// user and nice, so it is left out of the total.
pub fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if fields.len() < 4 {
        return None;
    }
    let total: u64 = fields.iter().sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some(CpuTimes {
        busy: total - idle,
        total,
    })
}

pub fn utilisation(previous: CpuTimes, current: CpuTimes) -> Option<f64> {
    let total = current.total.checked_sub(previous.total)?;
    let busy = current.busy.checked_sub(previous.busy)?;
    (total > 0).then(|| (busy as f64 / total as f64).clamp(0.0, 1.0))
}

pub struct CpuEstimateSource {
    tdp_watts: f64,
    tdp_origin: String,
    stat_path: PathBuf,
    stat_file: File,
    buffer: Vec<u8>,
    channels: Vec<ChannelSpec>,
    previous: Option<CpuTimes>,
    last_compute_ns: u64,
    watts: f64,
}

impl CpuEstimateSource {
    pub fn new(tdp_watts: f64, tdp_origin: &str, stat_path: &Path) -> CoreResult<Self> {
        if !(tdp_watts > 0.0 && tdp_watts.is_finite()) {
            return Err(CoreError::Config(format!(
                "cpu_tdp_watts={tdp_watts} is not allowed: give the CPU's TDP in watts, > 0"
            )));
        }
        let stat_file = File::open(stat_path).map_err(|e| {
            CoreError::Unavailable(format!(
                "cpu-estimate: cannot open {}: {e}",
                stat_path.display()
            ))
        })?;
        let mut source = CpuEstimateSource {
            tdp_watts,
            tdp_origin: tdp_origin.to_string(),
            stat_path: stat_path.to_path_buf(),
            stat_file,
            buffer: vec![0; 64 * 1024],
            channels: vec![ChannelSpec {
                name: "cpu:estimate".into(),
                kind: ChannelKind::Power,
                provenance: Provenance::Estimated,
                source: SOURCE_CPU_ESTIMATE,
                parent: None,
            }],
            previous: None,
            last_compute_ns: 0,
            watts: tdp_watts * IDLE_FRACTION,
        };
        source.previous = source.read_times();
        if source.previous.is_none() {
            return Err(CoreError::Unavailable(format!(
                "cpu-estimate: {} has no aggregate `cpu` line",
                stat_path.display()
            )));
        }
        Ok(source)
    }

    /// Reads into the preallocated buffer: /proc/stat is regenerated on every read, and pread
    /// at offset 0 gives a fresh copy without reopening.
    fn read_times(&mut self) -> Option<CpuTimes> {
        let n = self.stat_file.read_at(&mut self.buffer, 0).ok()?;
        parse_proc_stat(std::str::from_utf8(&self.buffer[..n]).ok()?)
    }
}

impl Source for CpuEstimateSource {
    fn name(&self) -> &'static str {
        SOURCE_CPU_ESTIMATE
    }

    fn channels(&self) -> &[ChannelSpec] {
        &self.channels
    }

    fn read(&mut self, t_ns: u64, out: &mut [Sample]) {
        if t_ns.saturating_sub(self.last_compute_ns) >= RECOMPUTE_NS {
            self.last_compute_ns = t_ns;
            match self.read_times() {
                Some(current) => {
                    if let Some(u) = self.previous.and_then(|p| utilisation(p, current)) {
                        self.watts = self.tdp_watts * (IDLE_FRACTION + (1.0 - IDLE_FRACTION) * u);
                    }
                    self.previous = Some(current);
                }
                None => {
                    out[0] = Sample::FAILED;
                    return;
                }
            }
        }
        out[0] = Sample::power(self.watts);
    }

    /// The estimate changes once per recompute period: reading it more often adds nothing.
    fn read_interval_ns(&self, sampler_period_ns: u64, _observed: Option<f64>) -> u64 {
        sampler_period_ns.max(RECOMPUTE_NS)
    }

    fn describe(&self) -> Vec<(String, String)> {
        vec![
            ("tdp_watts".into(), format!("{}", self.tdp_watts)),
            ("tdp_origin".into(), self.tdp_origin.clone()),
            (
                "model".into(),
                format!(
                    "P = TDP x ({IDLE_FRACTION} + {} x utilisation)",
                    1.0 - IDLE_FRACTION
                ),
            ),
            (
                "utilisation_from".into(),
                self.stat_path.display().to_string(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_utilisation_counts_iowait_as_idle() {
        let before = parse_proc_stat("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        let after = parse_proc_stat("cpu  200 0 200 1300 300 0 0 0 0 0\n").unwrap();
        // busy +200 of total +1000
        assert!((utilisation(before, after).unwrap() - 0.2).abs() < 1e-12);
    }

    #[test]
    fn estimate_is_between_idle_floor_and_tdp_and_flagged_estimated() {
        let mut source = CpuEstimateSource::new(100.0, "test", Path::new("/proc/stat")).unwrap();
        assert_eq!(source.channels()[0].provenance, Provenance::Estimated);
        let mut out = [Sample::FAILED];
        source.read(RECOMPUTE_NS * 10, &mut out);
        assert!(out[0].ok && out[0].power_watts >= 10.0 && out[0].power_watts <= 100.0);
    }

    #[test]
    fn nonpositive_tdp_is_a_config_error() {
        assert!(matches!(
            CpuEstimateSource::new(0.0, "test", Path::new("/proc/stat")),
            Err(CoreError::Config(_))
        ));
    }
}
