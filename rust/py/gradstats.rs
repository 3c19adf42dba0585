//! The `GradientRing` class: a thin wrapper over `crate::gradstats`. A step's row arrives as one
//! contiguous buffer of little-endian float32 (`bytes` or `bytearray`), read in place.

use std::sync::{Mutex, MutexGuard};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes};

use crate::gradstats::{group_stats, AnomalyKind, GradientRing, Thresholds, STATS_PER_LAYER};
use crate::py::errors::IntoPyResult;

type AnomalyTuple = (u64, &'static str, usize, f64, f64, f64);

#[pyclass(frozen, module = "hf_eco2ai._core", name = "GradientRing")]
pub struct PyGradientRing {
    inner: Mutex<GradientRing>,
}

impl PyGradientRing {
    fn ring(&self) -> MutexGuard<'_, GradientRing> {
        // A panic cannot leave the ring half-updated in a way later pushes would trip over, so a
        // poisoned lock is taken over rather than failing every later call.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn floats_of(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[pymethods]
impl PyGradientRing {
    #[new]
    #[pyo3(signature = (
        n_layers, history_capacity = 1000, window = 100, min_history = 20,
        explosion_factor = 10.0, explosion_threshold = None, vanishing_eps = 1e-8,
        vanishing_steps = 50, loss_z_threshold = 10.0, memory_spike_factor = 1.5
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        n_layers: usize,
        history_capacity: usize,
        window: usize,
        min_history: usize,
        explosion_factor: f64,
        explosion_threshold: Option<f64>,
        vanishing_eps: f64,
        vanishing_steps: u32,
        loss_z_threshold: f64,
        memory_spike_factor: f64,
    ) -> PyResult<Self> {
        let thresholds = Thresholds {
            window,
            min_history,
            explosion_factor,
            explosion_threshold: explosion_threshold.unwrap_or(f64::INFINITY),
            vanishing_eps,
            vanishing_steps,
            loss_z_threshold,
            memory_spike_factor,
        };
        GradientRing::new(n_layers, history_capacity, thresholds)
            .map(|ring| PyGradientRing {
                inner: Mutex::new(ring),
            })
            .into_py_result(py)
    }

    /// The anomaly type names, in the order of the core's kinds.
    #[classattr]
    #[allow(non_snake_case)]
    fn ANOMALY_TYPES() -> Vec<&'static str> {
        AnomalyKind::ALL.iter().map(|kind| kind.name()).collect()
    }

    /// One step's row: `3 * n_layers` little-endian float32 (norm, max |g|, NaN/Inf count per
    /// layer; a negative norm marks a layer without gradient). Returns the anomalies it raised.
    fn push_gradients(&self, py: Python<'_>, step: u64, row: &Bound<'_, PyAny>) -> PyResult<usize> {
        let n_layers = self.ring().n_layers();
        let expected = n_layers * STATS_PER_LAYER * 4;
        let check = |length: usize| -> PyResult<()> {
            if length == expected {
                Ok(())
            } else {
                Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "row has {length} bytes; this ring takes {expected} ({n_layers} layers x \
                     {STATS_PER_LAYER} float32)"
                )))
            }
        };
        let floats = if let Ok(bytes) = row.cast::<PyBytes>() {
            check(bytes.as_bytes().len())?;
            floats_of(bytes.as_bytes())
        } else if let Ok(array) = row.cast::<PyByteArray>() {
            // SAFETY: the GIL is held and no Python code runs while the slice is read, so the
            // bytearray cannot be resized underneath it.
            let bytes = unsafe { array.as_bytes() };
            check(bytes.len())?;
            floats_of(bytes)
        } else {
            return Err(PyTypeError::new_err(format!(
                "row is {}; expected bytes or bytearray of float32",
                row.get_type().name()?
            )));
        };
        self.ring().push_gradients(step, &floats).into_py_result(py)
    }

    /// The step's training loss. Returns the anomalies it raised (0 or 1).
    fn push_loss(&self, step: u64, loss: f64) -> usize {
        self.ring().push_loss(step, loss)
    }

    /// The device memory of the step, in bytes. Returns the anomalies it raised (0 or 1).
    fn push_memory(&self, step: u64, memory_bytes: f64) -> usize {
        self.ring().push_memory(step, memory_bytes)
    }

    /// Anomalies since the last drain: (step, type, series, value, threshold, statistic).
    fn drain_anomalies(&self) -> Vec<AnomalyTuple> {
        self.ring()
            .drain_anomalies()
            .into_iter()
            .map(|a| {
                (
                    a.step,
                    a.kind.name(),
                    a.series,
                    a.value,
                    a.threshold,
                    a.statistic,
                )
            })
            .collect()
    }

    /// The kept rows of one series, oldest first: steps, and (value, max, count) per step.
    #[allow(clippy::type_complexity)]
    fn history(&self, py: Python<'_>, series: usize) -> PyResult<(Vec<u64>, Vec<(f32, f32, f32)>)> {
        let ring = self.ring();
        let history = ring.history(series).into_py_result(py)?;
        Ok(history
            .iter()
            .map(|(step, row)| (step, (row[0], row[1], row[2])))
            .unzip())
    }

    /// Rolling figures of one series over its window: (count, mean, std, median), NaN when empty.
    fn rolling(&self, py: Python<'_>, series: usize) -> PyResult<(usize, f64, f64, f64)> {
        let ring = self.ring();
        let window = ring.window(series).into_py_result(py)?;
        Ok((window.len(), window.mean(), window.std(), window.median()))
    }

    /// The values now in one series' rolling window, oldest first.
    fn window_values(&self, py: Python<'_>, series: usize) -> PyResult<Vec<f64>> {
        let ring = self.ring();
        let window = ring.window(series).into_py_result(py)?;
        Ok(window.values().collect())
    }

    #[getter]
    fn n_layers(&self) -> usize {
        self.ring().n_layers()
    }
    #[getter]
    fn total_series(&self) -> usize {
        self.ring().total_series()
    }
    #[getter]
    fn loss_series(&self) -> usize {
        self.ring().loss_series()
    }
    #[getter]
    fn memory_series(&self) -> usize {
        self.ring().memory_series()
    }
    #[getter]
    fn history_capacity(&self) -> usize {
        self.ring().history_capacity()
    }
    #[getter]
    fn window(&self) -> usize {
        self.ring().thresholds().window
    }
    #[getter]
    fn rows_pushed(&self) -> u64 {
        self.ring().rows_pushed()
    }
    #[getter]
    fn anomalies_dropped(&self) -> u64 {
        self.ring().anomalies_dropped()
    }
}

/// Per-group gradient figures of CPU float32 buffers, in one pass over each, written into `row`
/// (a bytearray of `3 * n_groups` float32): L2 norm, max |g| and NaN/Inf count per group, a norm
/// of -1 for a group without buffers.
///
/// `addresses[i]`/`lengths[i]` name buffer i (its address and element count) and `groups[i]` its
/// group. The caller must keep every buffer alive, contiguous, float32 and unchanged during the
/// call (it holds the tensors; the GIL stays held, so no other Python code runs meanwhile).
#[pyfunction]
pub fn gradient_group_stats_f32(
    py: Python<'_>,
    addresses: Vec<usize>,
    lengths: Vec<usize>,
    groups: Vec<usize>,
    n_groups: usize,
    row: &Bound<'_, PyByteArray>,
) -> PyResult<()> {
    if addresses.len() != lengths.len() || addresses.len() != groups.len() {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "addresses, lengths and groups must pair up; got {}, {} and {}",
            addresses.len(),
            lengths.len(),
            groups.len()
        )));
    }
    if addresses
        .iter()
        .zip(&lengths)
        .any(|(&address, &length)| length > 0 && (address == 0 || address % 4 != 0))
    {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "every address must be a non-null, 4-byte aligned float32 buffer",
        ));
    }
    // SAFETY: the caller guarantees each (address, length) is a live float32 buffer (checked
    // non-null and aligned above) that nothing writes while the GIL is held. An empty tensor may
    // have a null address: it is read as an empty slice.
    let slices: Vec<(&[f32], usize)> = addresses
        .iter()
        .zip(&lengths)
        .zip(&groups)
        .map(|((&address, &length), &group)| {
            let values: &[f32] = if length == 0 {
                &[]
            } else {
                unsafe { std::slice::from_raw_parts(address as *const f32, length) }
            };
            (values, group)
        })
        .collect();
    let mut values = vec![0.0f32; n_groups * STATS_PER_LAYER];
    group_stats(&slices, n_groups, &mut values).into_py_result(py)?;
    // SAFETY: the GIL is held and no Python code runs while the bytearray's bytes are written.
    let bytes = unsafe { row.as_bytes_mut() };
    if bytes.len() != values.len() * 4 {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "row has {} bytes; {n_groups} groups need {}",
            bytes.len(),
            values.len() * 4
        )));
    }
    for (chunk, value) in bytes.chunks_exact_mut(4).zip(values) {
        chunk.copy_from_slice(&value.to_le_bytes());
    }
    Ok(())
}
