//! NVIDIA GPUs through NVML. `nvml-wrapper` loads libnvidia-ml at run time, so this builds and
//! imports on machines without a GPU; there, opening the source fails with a clear reason.
//!
//! Energy comes from the total-energy counter (mJ since driver load, Volta and newer), which is
//! exact over any span longer than its update period. Power for the trace comes from the
//! instant-power field (NVML_FI_DEV_POWER_INSTANT): `power_usage()` is a 1 s average on recent
//! GPUs and must not be read as instant power.

use std::sync::OnceLock;

use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::device::SampleValue;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::FieldValueSample;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::{Device, Nvml};

use crate::channel::{ChannelKind, ChannelSpec, Provenance, Sample};
use crate::error::{CoreError, CoreResult};
use crate::sources::Source;

const FIELD_POWER_INSTANT: FieldId = FieldId(186);

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
        } else {
            break;
        }
    }
    Some(devices)
}

fn mig_error(what: &str) -> CoreError {
    CoreError::Unavailable(format!(
        "nvml: {what} is a MIG instance; NVML reports no per-instance energy, so it cannot be \
         measured. Measure the whole GPU (disable MIG) or use sources=\"cpu-estimate\" for the host"
    ))
}

fn resolve_device(nvml: &'static Nvml, entry: &VisibleDevice) -> CoreResult<Device<'static>> {
    match entry {
        VisibleDevice::Mig(uuid) => Err(mig_error(uuid)),
        VisibleDevice::Index(index) => nvml.device_by_index(*index).map_err(|e| {
            CoreError::Unavailable(format!("nvml: CUDA_VISIBLE_DEVICES names GPU {index}: {e}"))
        }),
        VisibleDevice::Uuid(prefix) => {
            let count = nvml
                .device_count()
                .map_err(|e| CoreError::Unavailable(format!("nvml: {e}")))?;
            let matches: Vec<Device<'static>> = (0..count)
                .filter_map(|i| nvml.device_by_index(i).ok())
                .filter(|d| d.uuid().is_ok_and(|u| u.starts_with(prefix.as_str())))
                .collect();
            match matches.len() {
                1 => Ok(matches.into_iter().next().expect("one match")),
                0 => Err(CoreError::Unavailable(format!(
                    "nvml: no GPU has UUID {prefix}"
                ))),
                _ => Err(CoreError::Config(format!(
                    "CUDA_VISIBLE_DEVICES entry {prefix} matches several GPUs"
                ))),
            }
        }
    }
}

/// The GPUs this process may use, in the order CUDA numbers them (`gpu:0` is `cuda:0`).
fn visible_devices(
    nvml: &'static Nvml,
    cuda_visible_devices: Option<&str>,
) -> CoreResult<Vec<Device<'static>>> {
    let devices = match parse_visible_devices(cuda_visible_devices) {
        None => {
            let count = nvml
                .device_count()
                .map_err(|e| CoreError::Unavailable(format!("nvml: {e}")))?;
            (0..count)
                .map(|i| resolve_device(nvml, &VisibleDevice::Index(i)))
                .collect::<CoreResult<Vec<_>>>()?
        }
        Some(entries) => entries
            .iter()
            .map(|e| resolve_device(nvml, e))
            .collect::<CoreResult<Vec<_>>>()?,
    };
    for device in &devices {
        if device.mig_mode().is_ok_and(|mode| mode.current == 1) {
            return Err(mig_error(&device.uuid().unwrap_or_else(|_| "a GPU".into())));
        }
    }
    Ok(devices)
}

pub struct NvmlSource {
    devices: Vec<Device<'static>>,
    channels: Vec<ChannelSpec>,
    facts: Vec<(String, String)>,
}

impl NvmlSource {
    /// `selection`: positions among the visible GPUs (or UUID prefixes); None = all visible.
    pub fn open(
        cuda_visible_devices: Option<&str>,
        selection: Option<&[String]>,
    ) -> CoreResult<Self> {
        let nvml = nvml()?;
        let visible = visible_devices(nvml, cuda_visible_devices)?;
        let mut chosen: Vec<(usize, Device<'static>)> = Vec::new();
        match selection {
            None => chosen.extend(visible.into_iter().enumerate()),
            Some(wanted) => {
                let mut visible: Vec<Option<Device<'static>>> =
                    visible.into_iter().map(Some).collect();
                for item in wanted {
                    let position = match item.parse::<usize>() {
                        Ok(p) if p < visible.len() => p,
                        Ok(p) => {
                            return Err(CoreError::Config(format!(
                                "devices={wanted:?}: GPU {p} is not visible to this process ({} visible)",
                                visible.len()
                            )))
                        }
                        Err(_) => visible
                            .iter()
                            .position(|d| d.as_ref().is_some_and(|d| d.uuid().is_ok_and(|u| u.starts_with(item.as_str()))))
                            .ok_or_else(|| CoreError::Config(format!("devices={wanted:?}: no visible GPU has UUID {item}")))?,
                    };
                    if let Some(device) = visible[position].take() {
                        chosen.push((position, device));
                    }
                }
            }
        }
        if chosen.is_empty() {
            return Err(CoreError::Unavailable(
                "nvml: no GPU is visible to this process (CUDA_VISIBLE_DEVICES)".into(),
            ));
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
                source: "nvml",
                parent: None,
            });
            devices.push(device);
        }
        Ok(NvmlSource {
            devices,
            channels,
            facts,
        })
    }
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
        "nvml"
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
    let devices = visible_devices(nvml, cuda_visible_devices)?;
    Ok(devices
        .iter()
        .enumerate()
        .map(|(index, device)| {
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
    }
}
