//! NVIDIA GPUs through NVML. `nvml-wrapper` loads libnvidia-ml at run time, so this builds and
//! imports on machines without a GPU; there, opening the source fails with a clear reason.
//!
//! Energy comes from the total-energy counter (mJ since driver load, Volta and newer), which is
//! exact over any span longer than its update period. Power for the trace comes from the
//! instant-power field (NVML_FI_DEV_POWER_INSTANT): `power_usage()` is a 1 s average on recent
//! GPUs and must not be read as instant power.

use std::cell::Cell;
use std::sync::OnceLock;

use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::device::SampleValue;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::FieldValueSample;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::{Device, Nvml};

use crate::channel::{ChannelKind, ChannelSpec, Provenance, Sample};
use crate::error::{CoreError, CoreResult};
use crate::sources::{Source, SOURCE_NVML};

const FIELD_POWER_INSTANT: FieldId = FieldId(186);

/// NVML is read at most this many times per observed update period of its energy counter:
/// enough to place each stair within 2 % of its length for the window estimator.
const READS_PER_UPDATE_PERIOD: f64 = 50.0;

/// Each read interval is drawn uniformly from this range around the nominal one. A fixed
/// interval that divides the counter's update period (2 ms into 100 ms, 10 ms into 100 ms) locks
/// the reads to the stairs: every change then falls at the same point between two reads, and
/// the midpoint places every stair boundary early or late by the same amount, up to half an
/// interval. That constant shift moves energy between adjacent windows (a 5 ms phase lost 10 %
/// of its energy at 0.6 ms). Random intervals make each change uniform between its two reads, so
/// the midpoint is unbiased; the mean interval, and so the cost, is unchanged.
const READ_INTERVAL_DITHER: (f64, f64) = (0.5, 1.5);

/// NVML is initialised once per process and kept: init is slow, and `Device` borrows it.
static NVML: OnceLock<Result<Nvml, String>> = OnceLock::new();

fn describe_init_error(e: &NvmlError) -> String {
    match e {
        NvmlError::LibloadingError(_) => {
            "NVML library (libnvidia-ml.so.1) not found: no NVIDIA driver on this machine".into()
        }
        NvmlError::DriverNotLoaded => "the NVIDIA driver is not loaded".into(),
        NvmlError::NoPermission => "no permission to use NVML".into(),
        other => format!("NVML failed to initialise: {other}"),
    }
}

fn nvml() -> CoreResult<&'static Nvml> {
    NVML.get_or_init(|| Nvml::init().map_err(|e| describe_init_error(&e)))
        .as_ref()
        .map_err(|reason| CoreError::Unavailable(format!("nvml: {reason}")))
}

/// One entry of CUDA_VISIBLE_DEVICES, as CUDA reads it.
#[derive(Debug, PartialEq, Eq)]
pub enum VisibleDevice {
    Index(u32),
    Uuid(String),
    Mig(String),
}

/// Parses CUDA_VISIBLE_DEVICES. `None` (unset) means every GPU; CUDA stops at the first entry
/// it cannot parse, and so do we.
pub fn parse_visible_devices(value: Option<&str>) -> Option<Vec<VisibleDevice>> {
    let value = value?;
    let mut devices = Vec::new();
    for entry in value.split(',').map(str::trim) {
        if entry.starts_with("MIG-") {
            devices.push(VisibleDevice::Mig(entry.to_string()));
        } else if entry.starts_with("GPU-") {
            devices.push(VisibleDevice::Uuid(entry.to_string()));
        } else if let Ok(index) = entry.parse::<i64>() {
            if index < 0 {
                break;
            }
            devices.push(VisibleDevice::Index(index as u32));
        } else if looks_like_uuid(entry) {
            // CUDA also takes a GPU UUID without its `GPU-` prefix.
            devices.push(VisibleDevice::Uuid(format!("GPU-{entry}")));
        } else {
            break;
        }
    }
    Some(devices)
}

/// A (prefix of a) UUID written without `GPU-`: hex digits and dashes, with a dash or a letter
/// so that it is no index.
fn looks_like_uuid(entry: &str) -> bool {
    !entry.is_empty()
        && entry.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        && entry.chars().any(|c| c == '-' || c.is_ascii_alphabetic())
}

fn mig_reason(what: &str) -> String {
    format!(
        "nvml: {what} is a MIG instance or a GPU in MIG mode; NVML reports no per-instance energy, \
         so it cannot be measured. Measure the whole GPU (disable MIG) or use sources=\"cpu-estimate\" \
         for the host"
    )
}

/// The GPUs CUDA_VISIBLE_DEVICES lets this process see, in CUDA's order (`gpu:0` is `cuda:0`),
/// and the entries that cannot be measured, each with its position and why.
struct Visible {
    devices: Vec<(usize, Device<'static>)>,
    unmeasurable: Vec<(usize, String)>,
}

fn device_count(nvml: &'static Nvml) -> CoreResult<u32> {
    nvml.device_count()
        .map_err(|e| CoreError::Unavailable(format!("nvml: {e}")))
}

fn visible_devices(nvml: &'static Nvml, cuda_visible_devices: Option<&str>) -> CoreResult<Visible> {
    let count = device_count(nvml)?;
    let entries = parse_visible_devices(cuda_visible_devices)
        .unwrap_or_else(|| (0..count).map(VisibleDevice::Index).collect());
    let mut visible = Visible {
        devices: Vec::new(),
        unmeasurable: Vec::new(),
    };
    for (position, entry) in entries.iter().enumerate() {
        let device = match entry {
            VisibleDevice::Mig(uuid) => {
                visible.unmeasurable.push((position, mig_reason(uuid)));
                continue;
            }
            // CUDA stops at the first entry naming no GPU, and so do we: later entries are
            // invisible to the process, whatever they say.
            VisibleDevice::Index(index) if *index >= count => break,
            VisibleDevice::Index(index) => nvml.device_by_index(*index).map_err(|e| {
                CoreError::Unavailable(format!("nvml: CUDA_VISIBLE_DEVICES names GPU {index}: {e}"))
            })?,
            VisibleDevice::Uuid(prefix) => {
                let matches: Vec<Device<'static>> = (0..count)
                    .filter_map(|i| nvml.device_by_index(i).ok())
                    .filter(|d| d.uuid().is_ok_and(|u| u.starts_with(prefix.as_str())))
                    .collect();
                match matches.len() {
                    0 => break,
                    1 => matches.into_iter().next().expect("one match"),
                    _ => {
                        return Err(CoreError::Config(format!(
                            "CUDA_VISIBLE_DEVICES entry {prefix} matches several GPUs"
                        )))
                    }
                }
            }
        };
        if device.mig_mode().is_ok_and(|mode| mode.current == 1) {
            let uuid = device.uuid().unwrap_or_else(|_| "unknown UUID".into());
            visible
                .unmeasurable
                .push((position, mig_reason(&format!("GPU {position} ({uuid})"))));
            continue;
        }
        visible.devices.push((position, device));
    }
    Ok(visible)
}

pub struct NvmlSource {
    devices: Vec<Device<'static>>,
    channels: Vec<ChannelSpec>,
    facts: Vec<(String, String)>,
    /// xorshift64 state for the read-interval dither; only the sampler thread touches it.
    dither_state: Cell<u64>,
}

impl NvmlSource {
    /// `selection`: positions among the visible GPUs (or UUID prefixes); None = all visible.
    pub fn open(
        cuda_visible_devices: Option<&str>,
        selection: Option<&[String]>,
    ) -> CoreResult<Self> {
        let nvml = nvml()?;
        let Visible {
            devices: visible,
            unmeasurable,
        } = visible_devices(nvml, cuda_visible_devices)?;
        let mut chosen: Vec<(usize, Device<'static>)> = Vec::new();
        match selection {
            None => chosen.extend(visible),
            Some(wanted) => {
                let mut visible: Vec<Option<(usize, Device<'static>)>> =
                    visible.into_iter().map(Some).collect();
                let slots = visible.len() + unmeasurable.len();
                for item in wanted {
                    let by_position = item.parse::<usize>().ok();
                    if let Some((_, reason)) =
                        unmeasurable.iter().find(|(p, _)| by_position == Some(*p))
                    {
                        return Err(CoreError::Unavailable(reason.clone()));
                    }
                    let found = match by_position {
                        Some(p) => visible
                            .iter()
                            .position(|d| d.as_ref().is_some_and(|(q, _)| *q == p))
                            .ok_or_else(|| {
                                CoreError::Config(format!(
                                    "devices={wanted:?}: GPU {p} is not visible to this process ({slots} visible)"
                                ))
                            })?,
                        None => visible
                            .iter()
                            .position(|d| {
                                d.as_ref().is_some_and(|(_, d)| {
                                    d.uuid().is_ok_and(|u| u.starts_with(item.as_str()))
                                })
                            })
                            .ok_or_else(|| {
                                CoreError::Config(format!(
                                    "devices={wanted:?}: no visible GPU has UUID {item}"
                                ))
                            })?,
                    };
                    if let Some(device) = visible[found].take() {
                        chosen.push(device);
                    }
                }
            }
        }
        if chosen.is_empty() {
            let mut reason =
                "nvml: no GPU is visible to this process (CUDA_VISIBLE_DEVICES)".to_string();
            for (_, why) in &unmeasurable {
                reason = format!("{reason}; {why}");
            }
            return Err(CoreError::Unavailable(reason));
        }
        let mut channels = Vec::new();
        let mut facts = Vec::new();
        let mut devices = Vec::new();
        for (position, device) in chosen {
            device.total_energy_consumption().map_err(|e| {
                CoreError::Unavailable(format!(
                    "nvml: GPU {position} has no total-energy counter ({e}); NVML energy needs Volta or newer"
                ))
            })?;
            let name = device.name().unwrap_or_else(|_| "unknown".into());
            let uuid = device.uuid().unwrap_or_else(|_| "unknown".into());
            facts.push((format!("gpu:{position}"), format!("{name} {uuid}")));
            channels.push(ChannelSpec {
                name: format!("gpu:{position}"),
                kind: ChannelKind::Counter {
                    joules_per_unit: 1e-3,
                    wrap_units: None,
                },
                provenance: Provenance::Measured,
                source: SOURCE_NVML,
                parent: None,
            });
            devices.push(device);
        }
        if selection.is_none() {
            for (position, why) in unmeasurable {
                facts.push((format!("skipped gpu:{position}"), why));
            }
        }
        Ok(NvmlSource {
            devices,
            channels,
            facts,
            dither_state: Cell::new(crate::clock::monotonic_ns() | 1),
        })
    }
}

/// A uniform draw from [0, 1) (xorshift64: dithering needs no better randomness).
fn next_unit(state: &Cell<u64>) -> f64 {
    let mut x = state.get();
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    state.set(x);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn instant_watts(device: &Device<'static>) -> f64 {
    let sample: Option<FieldValueSample> = device
        .field_values_for(&[FIELD_POWER_INSTANT])
        .ok()
        .and_then(|mut v| v.pop())
        .and_then(Result::ok);
    match sample.map(|s| s.value) {
        Some(Ok(SampleValue::U32(mw))) => mw as f64 / 1000.0,
        Some(Ok(SampleValue::U64(mw))) => mw as f64 / 1000.0,
        Some(Ok(SampleValue::I64(mw))) => mw as f64 / 1000.0,
        Some(Ok(SampleValue::F64(mw))) => mw / 1000.0,
        _ => f64::NAN,
    }
}

impl Source for NvmlSource {
    fn name(&self) -> &'static str {
        SOURCE_NVML
    }

    fn channels(&self) -> &[ChannelSpec] {
        &self.channels
    }

    fn read(&mut self, _t_ns: u64, out: &mut [Sample]) {
        for (slot, device) in out.iter_mut().zip(&self.devices) {
            *slot = match device.total_energy_consumption() {
                Ok(millijoules) => Sample::counter(millijoules, instant_watts(device)),
                Err(_) => Sample::FAILED,
            };
        }
    }

    /// A fiftieth of the counter's observed update period (2 ms at 100 ms stairs): each stair is
    /// located within 1 % of its length (for the window estimator), without the reads a 10 kHz
    /// rate would add. The sampler's own period until the update period is seen, or when it is
    /// longer (at the default 100 Hz, every 10 ms). Dithered (`READ_INTERVAL_DITHER`).
    fn read_interval_ns(
        &self,
        sampler_period_ns: u64,
        observed_update_period_ns: Option<f64>,
    ) -> u64 {
        let nominal_ns = observed_update_period_ns.map_or(sampler_period_ns, |period| {
            sampler_period_ns.max((period / READS_PER_UPDATE_PERIOD) as u64)
        });
        let (low, high) = READ_INTERVAL_DITHER;
        let factor = low + (high - low) * next_unit(&self.dither_state);
        ((nominal_ns as f64 * factor) as u64).max(1)
    }

    fn describe(&self) -> Vec<(String, String)> {
        self.facts.clone()
    }
}

/// Live state of one visible GPU, for exporters; read at scrape time, never on the hot path.
#[derive(Debug, Clone, Default)]
pub struct GpuStat {
    pub index: usize,
    pub name: String,
    pub uuid: String,
    pub temperature_c: Option<f64>,
    pub memory_used_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub utilization_percent: Option<f64>,
    pub power_watts: Option<f64>,
}

pub fn gpu_stats(cuda_visible_devices: Option<&str>) -> CoreResult<Vec<GpuStat>> {
    let nvml = nvml()?;
    let devices = visible_devices(nvml, cuda_visible_devices)?.devices;
    Ok(devices
        .iter()
        .map(|(index, device)| {
            let index = *index;
            let memory = device.memory_info().ok();
            let watts = instant_watts(device);
            GpuStat {
                index,
                name: device.name().unwrap_or_default(),
                uuid: device.uuid().unwrap_or_default(),
                temperature_c: device
                    .temperature(TemperatureSensor::Gpu)
                    .ok()
                    .map(f64::from),
                memory_used_bytes: memory.as_ref().map(|m| m.used),
                memory_total_bytes: memory.as_ref().map(|m| m.total),
                utilization_percent: device.utilization_rates().ok().map(|u| f64::from(u.gpu)),
                power_watts: watts.is_finite().then_some(watts),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_visible_devices_accepts_indices_and_uuids_and_stops_at_garbage() {
        assert_eq!(parse_visible_devices(None), None);
        assert_eq!(
            parse_visible_devices(Some("1, GPU-abc,MIG-x")),
            Some(vec![
                VisibleDevice::Index(1),
                VisibleDevice::Uuid("GPU-abc".into()),
                VisibleDevice::Mig("MIG-x".into())
            ])
        );
        assert_eq!(
            parse_visible_devices(Some("0,-1,2")),
            Some(vec![VisibleDevice::Index(0)])
        );
        assert_eq!(parse_visible_devices(Some("")), Some(vec![]));
        assert_eq!(
            parse_visible_devices(Some("e0000000-0000,zz")),
            Some(vec![VisibleDevice::Uuid("GPU-e0000000-0000".into())])
        );
    }

    #[test]
    fn read_dither_is_uniform_so_reads_never_lock_to_the_stairs() {
        let state = Cell::new(12_345);
        let draws: Vec<f64> = (0..10_000).map(|_| next_unit(&state)).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        // Every tenth of the range is hit about equally: a change falls anywhere between reads.
        for decile in 0..10 {
            let hits = draws
                .iter()
                .filter(|u| (**u * 10.0) as usize == decile)
                .count();
            assert!((800..1200).contains(&hits), "decile {decile}: {hits}");
        }
    }
}
