//! The `hf_eco2ai._core` module: everything that crosses into Python is listed here.

mod errors;
mod gradstats;
mod meter;
mod sources;

use pyo3::prelude::*;

/// Seconds on the clock every reading and boundary is stamped with (= `time.monotonic()`).
#[pyfunction]
fn monotonic_s() -> f64 {
    crate::clock::ns_to_s(crate::clock::monotonic_ns())
}

/// Energy of each span between consecutive `boundaries_s` from power readings, by the
/// sampler's own integrator (trapezoid, linear interpolation at boundaries).
#[pyfunction]
fn integrate_power_spans(
    times_s: Vec<f64>,
    watts: Vec<f64>,
    boundaries_s: Vec<f64>,
) -> PyResult<Vec<f64>> {
    if times_s.len() != watts.len() {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "times_s has {} values but watts has {}: they must pair up",
            times_s.len(),
            watts.len()
        )));
    }
    Ok(crate::energy::integrate_power_spans(
        &times_s,
        &watts,
        &boundaries_s,
    ))
}

#[pymodule]
mod _core {
    #[pymodule_export]
    use super::gradstats::{gradient_group_stats_f32, PyGradientRing};
    #[pymodule_export]
    use super::meter::PyMeter;
    #[pymodule_export]
    use super::sources::{
        cpu_estimate_source, nvml_gpu_stats, nvml_source, rapl_source, synthetic_source,
        SourceHandle,
    };
    #[pymodule_export]
    use super::{integrate_power_spans, monotonic_s};

    #[pymodule_init]
    fn init(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::types::PyModuleMethods;
        m.add("MAX_CHANNELS", crate::channel::MAX_CHANNELS)?;
        m.add("MAX_RATE_HZ", crate::sampler::MAX_RATE_HZ)?;
        Ok(())
    }
}
