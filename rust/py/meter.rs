//! The `Meter` class: a thin wrapper over the sampler. Arrays leave as raw little-endian bytes
//! that the Python side views with numpy, so the extension needs no numpy at build time.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::clock::ns_to_s;
use crate::py::errors::IntoPyResult;
use crate::py::sources::SourceHandle;
use crate::sampler::{Meter, MeterConfig};
use std::sync::atomic::Ordering;

#[pyclass(frozen, module = "hf_eco2ai._core", name = "Meter")]
pub struct PyMeter {
    inner: Meter,
}

/// One column of little-endian values, written straight into the Python bytes object.
fn column<'py, T, const N: usize>(
    py: Python<'py>,
    values: impl ExactSizeIterator<Item = T>,
    to_bytes: impl Fn(T) -> [u8; N],
) -> PyResult<Bound<'py, PyBytes>> {
    let mut values = values;
    PyBytes::new_with(py, values.len() * N, |buffer| {
        for chunk in buffer.chunks_exact_mut(N) {
            if let Some(value) = values.next() {
                chunk.copy_from_slice(&to_bytes(value));
            }
        }
        Ok(())
    })
}

/// The per-channel joules of each row, row-major, in one column.
fn joules_column<'py>(
    py: Python<'py>,
    rows: &[[f64; crate::channel::MAX_CHANNELS]],
    n_channels: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    PyBytes::new_with(py, rows.len() * n_channels * 8, |buffer| {
        for (chunk, value) in buffer
            .chunks_exact_mut(8)
            .zip(rows.iter().flat_map(|r| &r[..n_channels]))
        {
            chunk.copy_from_slice(&value.to_le_bytes());
        }
        Ok(())
    })
}

#[pymethods]
impl PyMeter {
    #[new]
    #[pyo3(signature = (sources, rate_hz, ring_capacity, boundary_capacity))]
    fn new(
        py: Python<'_>,
        sources: Vec<Bound<'_, SourceHandle>>,
        rate_hz: f64,
        ring_capacity: usize,
        boundary_capacity: usize,
    ) -> PyResult<Self> {
        let sources = sources
            .iter()
            .map(|s| s.get().take())
            .collect::<Result<Vec<_>, _>>()
            .into_py_result(py)?;
        let config = MeterConfig {
            rate_hz,
            ring_capacity,
            boundary_capacity,
        };
        Meter::new(sources, config)
            .map(|inner| PyMeter { inner })
            .into_py_result(py)
    }

    /// Starts the sampler; returns after its first reading. The GIL is released meanwhile.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.start()).into_py_result(py)
    }

    /// Stops the sampler after a final reading. The GIL is released while the thread joins.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.stop()).into_py_result(py)
    }

    /// A step boundary: one clock read and one lock-free push. False when not running or full.
    fn mark(&self) -> bool {
        self.inner.mark()
    }

    fn open_window(&self, name_id: u32) -> bool {
        self.inner.open_window(name_id)
    }

    fn close_window(&self, name_id: u32) -> bool {
        self.inner.close_window(name_id)
    }

    #[getter]
    fn running(&self) -> bool {
        self.inner.is_running()
    }

    /// Resolved records since the last drain, as a dict of raw little-endian columns.
    fn drain_records<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let records = py.detach(|| self.inner.drain_records());
        let n_channels = self.inner.channels().len();
        let columns = PyDict::new(py);
        columns.set_item("count", records.len())?;
        columns.set_item("kind", column(py, records.iter(), |r| [r.kind as u8])?)?;
        columns.set_item(
            "index",
            column(py, records.iter(), |r| r.index.to_le_bytes())?,
        )?;
        columns.set_item(
            "name_id",
            column(py, records.iter(), |r| r.name_id.to_le_bytes())?,
        )?;
        columns.set_item(
            "flags",
            column(py, records.iter(), |r| r.flags.to_le_bytes())?,
        )?;
        columns.set_item(
            "t0_s",
            column(py, records.iter(), |r| ns_to_s(r.t0_ns).to_le_bytes())?,
        )?;
        columns.set_item(
            "t1_s",
            column(py, records.iter(), |r| ns_to_s(r.t1_ns).to_le_bytes())?,
        )?;
        let joules: Vec<_> = records.iter().map(|r| r.joules).collect();
        columns.set_item("joules", joules_column(py, &joules, n_channels)?)?;
        Ok(columns)
    }

    /// Power readings since the last drain: `t_s` and `watts` (rows × channels) as raw columns.
    /// A failed reading is NaN.
    fn drain_trace<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let rows = py.detach(|| self.inner.drain_trace());
        let n_channels = self.inner.channels().len();
        let columns = PyDict::new(py);
        columns.set_item("count", rows.len())?;
        columns.set_item(
            "t_s",
            column(py, rows.iter(), |r| ns_to_s(r.t_ns).to_le_bytes())?,
        )?;
        let watts: Vec<_> = rows.iter().map(|r| r.watts).collect();
        columns.set_item("watts", joules_column(py, &watts, n_channels)?)?;
        Ok(columns)
    }

    /// Counter stairs since the last drain: `channel` (u32), `t0_s`, `t1_s`, `joules`.
    fn drain_stairs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let rows = py.detach(|| self.inner.drain_stairs());
        let columns = PyDict::new(py);
        columns.set_item("count", rows.len())?;
        columns.set_item(
            "channel",
            column(py, rows.iter(), |r| r.channel.to_le_bytes())?,
        )?;
        columns.set_item(
            "t0_s",
            column(py, rows.iter(), |r| ns_to_s(r.stair.t0_ns).to_le_bytes())?,
        )?;
        columns.set_item(
            "t1_s",
            column(py, rows.iter(), |r| ns_to_s(r.stair.t1_ns).to_le_bytes())?,
        )?;
        columns.set_item(
            "joules",
            column(py, rows.iter(), |r| r.stair.joules.to_le_bytes())?,
        )?;
        Ok(columns)
    }

    /// Channels as (name, kind, provenance, source, parent) tuples, in column order.
    fn channels(
        &self,
    ) -> Vec<(
        String,
        &'static str,
        &'static str,
        &'static str,
        Option<String>,
    )> {
        self.inner
            .channels()
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.kind_str(),
                    c.provenance.as_str(),
                    c.source,
                    c.parent.clone(),
                )
            })
            .collect()
    }

    /// The live snapshot: readable at any time without draining, cheap, no lock.
    fn totals<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let live = self.inner.live();
        let joules = PyDict::new(py);
        let watts = PyDict::new(py);
        let errors = PyDict::new(py);
        let resets = PyDict::new(py);
        let mut resets_total = 0;
        for (i, channel) in self.inner.channels().iter().enumerate() {
            joules.set_item(&channel.name, live.joules(i))?;
            watts.set_item(&channel.name, live.watts(i))?;
            errors.set_item(&channel.name, live.errors(i))?;
            resets.set_item(&channel.name, live.counter_resets(i))?;
            resets_total += live.counter_resets(i);
        }
        let totals = PyDict::new(py);
        let first = live.first_reading_ns.load(Ordering::Acquire);
        let last = live.last_reading_ns.load(Ordering::Acquire);
        totals.set_item("t_s", (last > 0).then(|| ns_to_s(last)))?;
        totals.set_item("first_reading_s", (first > 0).then(|| ns_to_s(first)))?;
        totals.set_item("joules", joules)?;
        totals.set_item("watts", watts)?;
        totals.set_item("errors_by_channel", errors)?;
        totals.set_item("counter_resets_by_channel", resets)?;
        totals.set_item("counter_resets", resets_total)?;
        for (key, counter) in [
            ("readings", &live.readings),
            ("missed_ticks", &live.missed_ticks),
            ("boundaries_dropped", &live.boundaries_dropped),
            ("records_dropped", &live.records_dropped),
            ("trace_dropped", &live.trace_dropped),
            ("sensor_errors", &live.sensor_errors),
            ("steps_marked", &live.steps_marked),
            ("steps_resolved", &live.steps_resolved),
            ("stairs_dropped", &live.stairs_dropped),
            ("stale_boundaries", &live.stale_boundaries),
            ("windows_not_recorded", &live.windows_not_recorded),
        ] {
            totals.set_item(key, counter.load(Ordering::Relaxed))?;
        }
        Ok(totals)
    }

    /// Observed sensor update period per channel in seconds (None until seen to change twice).
    fn update_periods_s(&self) -> Vec<Option<f64>> {
        (0..self.inner.channels().len())
            .map(|i| self.inner.live().update_period_s(i))
            .collect()
    }

    /// Per source: (name, [(fact, value)]) recorded when it was opened.
    fn source_facts(&self) -> Vec<(String, Vec<(String, String)>)> {
        self.inner.source_facts().to_vec()
    }

    #[getter]
    fn rate_hz(&self) -> f64 {
        self.inner.config().rate_hz
    }

    #[getter]
    fn ring_capacity(&self) -> usize {
        self.inner.config().ring_capacity
    }

    #[getter]
    fn boundary_capacity(&self) -> usize {
        self.inner.boundary_capacity()
    }
}
