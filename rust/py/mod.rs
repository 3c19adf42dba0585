//! The `hf_eco2ai._core` module: everything that crosses into Python is listed here.

mod csv_text;
mod errors;
mod gradstats;
mod mark_function;
mod meter;
mod sources;

use pyo3::prelude::*;

/// Energy of each span between consecutive `boundaries_s` from power readings, by the
/// sampler's own integrator (trapezoid, linear interpolation at boundaries).
#[pyfunction]
fn integrate_power_spans(
    py: Python<'_>,
    times_s: Vec<f64>,
    watts: Vec<f64>,
    boundaries_s: Vec<f64>,
) -> PyResult<Vec<f64>> {
    if times_s.len() != watts.len() {
        return Err(errors::to_py(
            py,
            crate::error::CoreError::Config(format!(
                "times_s has {} values but watts has {}: they must pair up",
                times_s.len(),
                watts.len()
            )),
        ));
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
    use super::csv_text::csv_rows;
    #[pymodule_export]
    use super::gradstats::{gradient_group_stats_f32, PyGradientRing};
    #[pymodule_export]
    use super::integrate_power_spans;
    #[pymodule_export]
    use super::meter::PyMeter;
    #[pymodule_export]
    use super::sources::{
        cpu_estimate_source, nvml_gpu_stats, nvml_source, process_share_source, rapl_source,
        synthetic_source, SourceHandle,
    };

    #[pymodule_init]
    fn init(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::types::PyModuleMethods;
        m.add("MAX_CHANNELS", crate::channel::MAX_CHANNELS)?;
        m.add("MAX_RATE_HZ", crate::sampler::MAX_RATE_HZ)?;
        m.add("MAX_WINDOW_DEPTH", crate::steps::MAX_WINDOW_DEPTH)?;
        // The record flag bits and source names are defined here only; Python reads them.
        for (constant, bit, _) in crate::steps::FLAGS {
            m.add(constant, bit)?;
        }
        let flag_names: Vec<(u32, &str)> = crate::steps::FLAGS
            .iter()
            .map(|&(_, bit, name)| (bit, name))
            .collect();
        m.add("FLAG_NAMES", flag_names)?;
        m.add("SOURCE_NAMES", crate::sources::SOURCE_NAMES.to_vec())?;
        Ok(())
    }
}
