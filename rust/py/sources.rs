//! Source constructors. Choosing sources ("auto") is the Python meter's job; each function here
//! opens exactly one source or raises why it cannot.

use std::path::Path;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::CoreError;
use crate::py::errors::IntoPyResult;
use crate::sources::cpu_estimate::CpuEstimateSource;
use crate::sources::nvml::{gpu_stats, NvmlSource};
use crate::sources::process_share::ProcessShareSource;
use crate::sources::rapl::RaplSource;
use crate::sources::synthetic::{SyntheticSource, Trace};
use crate::sources::Source;

/// An opened source, waiting to be handed to one Meter.
#[pyclass(frozen, module = "hf_eco2ai._core")]
pub struct SourceHandle {
    name: &'static str,
    inner: Mutex<Option<Box<dyn Source>>>,
}

impl SourceHandle {
    fn wrap(source: impl Source + 'static) -> SourceHandle {
        SourceHandle {
            name: source.name(),
            inner: Mutex::new(Some(Box::new(source))),
        }
    }

    pub fn take(&self) -> Result<Box<dyn Source>, CoreError> {
        self.inner
            .lock()
            .expect("source handle lock")
            .take()
            .ok_or_else(|| {
                CoreError::Config(format!(
                    "the {} source is already used by another meter: open a new one",
                    self.name
                ))
            })
    }
}

#[pymethods]
impl SourceHandle {
    #[getter]
    fn name(&self) -> &'static str {
        self.name
    }
}

fn trace_from(kind: &str, params: &[f64]) -> Result<Trace, CoreError> {
    let wrong = |expected: &str| {
        Err(CoreError::Config(format!(
            "synthetic trace kind={kind:?} takes {expected}, got {} numbers",
            params.len()
        )))
    };
    match (kind, params) {
        ("constant", [watts]) => Ok(Trace::Constant { watts: *watts }),
        ("constant", _) => wrong("watts"),
        ("square", [low, high, period]) => Ok(Trace::Square {
            low_watts: *low,
            high_watts: *high,
            period_s: *period,
        }),
        ("square", _) => wrong("low_watts, high_watts, period_s"),
        ("ramp", [start, slope]) => Ok(Trace::Ramp {
            start_watts: *start,
            watts_per_s: *slope,
        }),
        ("ramp", _) => wrong("start_watts, watts_per_s"),
        ("piecewise", flat) if !flat.is_empty() && flat.len() % 2 == 0 => Ok(Trace::Piecewise {
            points: flat.chunks(2).map(|p| (p[0], p[1])).collect(),
        }),
        ("piecewise", _) => wrong("(t_s, watts) pairs"),
        _ => Err(CoreError::Config(format!(
            "synthetic trace kind={kind:?} is unknown: use constant, square, ramp or piecewise"
        ))),
    }
}

#[pyfunction]
#[pyo3(signature = (traces, fail_after_s=None))]
pub fn synthetic_source(
    py: Python<'_>,
    traces: Vec<(String, Vec<f64>)>,
    fail_after_s: Option<f64>,
) -> PyResult<SourceHandle> {
    let traces = traces
        .iter()
        .map(|(kind, params)| trace_from(kind, params))
        .collect::<Result<Vec<_>, _>>()
        .into_py_result(py)?;
    SyntheticSource::new(traces, fail_after_s)
        .map(SourceHandle::wrap)
        .into_py_result(py)
}

#[pyfunction]
pub fn rapl_source(py: Python<'_>, root: &str) -> PyResult<SourceHandle> {
    RaplSource::open(Path::new(root))
        .map(SourceHandle::wrap)
        .into_py_result(py)
}

#[pyfunction]
pub fn cpu_estimate_source(
    py: Python<'_>,
    tdp_watts: f64,
    tdp_origin: &str,
    proc_stat_path: &str,
) -> PyResult<SourceHandle> {
    CpuEstimateSource::new(tdp_watts, tdp_origin, Path::new(proc_stat_path))
        .map(SourceHandle::wrap)
        .into_py_result(py)
}

/// `inner`'s channels scaled by the share of the machine's CPU time that pid `root_pid` and its
/// children used (see `sources::process_share`). Takes `inner` out of its handle.
#[pyfunction]
#[pyo3(signature = (inner, root_pid, children_only=false, proc_root="/proc"))]
pub fn process_share_source(
    py: Python<'_>,
    inner: &SourceHandle,
    root_pid: u32,
    children_only: bool,
    proc_root: &str,
) -> PyResult<SourceHandle> {
    let inner = inner.take().into_py_result(py)?;
    ProcessShareSource::new(inner, Path::new(proc_root), root_pid, children_only)
        .map(SourceHandle::wrap)
        .into_py_result(py)
}

#[pyfunction]
#[pyo3(signature = (cuda_visible_devices=None, devices=None))]
pub fn nvml_source(
    py: Python<'_>,
    cuda_visible_devices: Option<String>,
    devices: Option<Vec<String>>,
) -> PyResult<SourceHandle> {
    py.detach(|| NvmlSource::open(cuda_visible_devices.as_deref(), devices.as_deref()))
        .map(SourceHandle::wrap)
        .into_py_result(py)
}

/// Temperature, memory, utilisation and power of each visible GPU, as dicts (None = unsupported).
#[pyfunction]
#[pyo3(signature = (cuda_visible_devices=None))]
pub fn nvml_gpu_stats<'py>(
    py: Python<'py>,
    cuda_visible_devices: Option<String>,
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let stats = py
        .detach(|| gpu_stats(cuda_visible_devices.as_deref()))
        .into_py_result(py)?;
    stats
        .into_iter()
        .map(|gpu| {
            let dict = PyDict::new(py);
            dict.set_item("index", gpu.index)?;
            dict.set_item("name", gpu.name)?;
            dict.set_item("uuid", gpu.uuid)?;
            dict.set_item("temperature_c", gpu.temperature_c)?;
            dict.set_item("memory_used_bytes", gpu.memory_used_bytes)?;
            dict.set_item("memory_total_bytes", gpu.memory_total_bytes)?;
            dict.set_item("utilization_percent", gpu.utilization_percent)?;
            dict.set_item("power_watts", gpu.power_watts)?;
            Ok(dict)
        })
        .collect()
}
