//! The `Meter` class: a thin wrapper over the sampler. Arrays leave as raw little-endian bytes
//! that the Python side views with numpy, so the extension needs no numpy at build time. Drains
//! take a row bound, so that the caller decides how large the arrays of one drain get.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::clock::ns_to_s;
use crate::py::errors::IntoPyResult;
use crate::py::sources::SourceHandle;
use crate::sampler::{Meter, MeterConfig};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

#[pyclass(frozen, module = "hf_eco2ai._core", name = "Meter")]
pub struct PyMeter {
    pub(super) inner: Meter,
    /// Column buffers kept from one drain to the next (see [`Columns`]).
    records_columns: Mutex<Columns>,
    trace_columns: Mutex<Columns>,
    stairs_columns: Mutex<Columns>,
}

/// Little-endian columns that a drain fills with the GIL released and then copies into Python
/// bytes. Kept with their capacity between drains, so that a drain of a bounded number of rows
/// allocates nothing here after the first: a buffer allocated and freed at every drain would be
/// a large transient block, and glibc's malloc keeps the heap it grew for such blocks.
#[derive(Default)]
struct Columns {
    count: usize,
    bytes: Vec<Vec<u8>>,
}

impl Columns {
    /// Empty, with `n` columns.
    fn reset(&mut self, n: usize) {
        self.count = 0;
        self.bytes.resize_with(n, Vec::new);
        self.bytes.iter_mut().for_each(Vec::clear);
    }

    fn put(&mut self, column: usize, value: &[u8]) {
        self.bytes[column].extend_from_slice(value);
    }

    /// The columns as a dict of bytes named by `names`, plus `count`.
    fn to_dict<'py>(&self, py: Python<'py>, names: &[&str]) -> PyResult<Bound<'py, PyDict>> {
        let columns = PyDict::new(py);
        columns.set_item("count", self.count)?;
        for (name, bytes) in names.iter().zip(&self.bytes) {
            columns.set_item(name, PyBytes::new(py, bytes))?;
        }
        Ok(columns)
    }
}

const RECORD_COLUMNS: [&str; 7] = [
    "kind", "index", "name_id", "flags", "t0_s", "t1_s", "joules",
];
const TRACE_COLUMNS: [&str; 2] = ["t_s", "watts"];
const STAIR_COLUMNS: [&str; 4] = ["channel", "t0_s", "t1_s", "joules"];

impl PyMeter {
    /// Fills the columns kept in `slot` by `fill` with the GIL released, then returns them as a
    /// dict. The buffers leave the slot meanwhile, so a concurrent drain fills buffers of its own.
    fn drain_columns<'py>(
        &self,
        py: Python<'py>,
        slot: &Mutex<Columns>,
        names: &[&str],
        fill: impl FnOnce(&mut Columns) + Send,
    ) -> PyResult<Bound<'py, PyDict>> {
        let columns = py.detach(|| {
            let mut columns = std::mem::take(&mut *slot.lock().expect("drain columns lock"));
            columns.reset(names.len());
            fill(&mut columns);
            columns
        });
        let dict = columns.to_dict(py, names);
        *slot.lock().expect("drain columns lock") = columns;
        dict
    }
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
            .map(|inner| PyMeter {
                inner,
                records_columns: Mutex::default(),
                trace_columns: Mutex::default(),
                stairs_columns: Mutex::default(),
            })
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

    /// The mark as a plain function object, for the per-step hot path: the interpreter calls it
    /// without the binding layer's method trampoline. It keeps this meter alive.
    fn mark_function<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        crate::py::mark_function::mark_function(slf)
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

    /// Up to `max_rows` resolved records since the last drain, oldest first, as a dict of raw
    /// little-endian columns: `count`, `kind` (u8), `index` (u64), `name_id` (u32), `flags`
    /// (u32), `t0_s`, `t1_s` and `joules` (rows × channels, f64).
    fn drain_records<'py>(&self, py: Python<'py>, max_rows: usize) -> PyResult<Bound<'py, PyDict>> {
        let n_channels = self.inner.channels().len();
        self.drain_columns(py, &self.records_columns, &RECORD_COLUMNS, |columns| {
            columns.count = self.inner.drain_records(max_rows, |r| {
                columns.put(0, &[r.kind as u8]);
                columns.put(1, &r.index.to_le_bytes());
                columns.put(2, &r.name_id.to_le_bytes());
                columns.put(3, &r.flags.to_le_bytes());
                columns.put(4, &ns_to_s(r.t0_ns).to_le_bytes());
                columns.put(5, &ns_to_s(r.t1_ns).to_le_bytes());
                for joules in &r.joules[..n_channels] {
                    columns.put(6, &joules.to_le_bytes());
                }
            });
        })
    }

    /// Up to `max_rows` power readings since the last drain, oldest first: `t_s` and `watts`
    /// (rows × channels) as raw columns. A failed reading is NaN.
    fn drain_trace<'py>(&self, py: Python<'py>, max_rows: usize) -> PyResult<Bound<'py, PyDict>> {
        let n_channels = self.inner.channels().len();
        self.drain_columns(py, &self.trace_columns, &TRACE_COLUMNS, |columns| {
            columns.count = self.inner.drain_trace(max_rows, |row| {
                columns.put(0, &ns_to_s(row.t_ns).to_le_bytes());
                for watts in &row.watts[..n_channels] {
                    columns.put(1, &watts.to_le_bytes());
                }
            });
        })
    }

    /// Up to `max_rows` counter stairs since the last drain, oldest first: `channel` (u32),
    /// `t0_s`, `t1_s`, `joules`.
    fn drain_stairs<'py>(&self, py: Python<'py>, max_rows: usize) -> PyResult<Bound<'py, PyDict>> {
        self.drain_columns(py, &self.stairs_columns, &STAIR_COLUMNS, |columns| {
            columns.count = self.inner.drain_stairs(max_rows, |row| {
                columns.put(0, &row.channel.to_le_bytes());
                columns.put(1, &ns_to_s(row.stair.t0_ns).to_le_bytes());
                columns.put(2, &ns_to_s(row.stair.t1_ns).to_le_bytes());
                columns.put(3, &row.stair.joules.to_le_bytes());
            });
        })
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

    /// What a training loop's log needs, without the dicts of `totals`: (`t_s` of the newest
    /// reading or None, steps marked, joules of the top-level channels, latest watts per channel
    /// in channel order). Channels with a parent lie inside it and are left out of the joules, so
    /// nothing is counted twice.
    fn log_point(&self) -> (Option<f64>, u64, f64, Vec<f64>) {
        let live = self.inner.live();
        let channels = self.inner.channels();
        let top_level_joules = channels
            .iter()
            .enumerate()
            .filter(|(_, channel)| channel.parent.is_none())
            .map(|(i, _)| live.joules(i))
            .sum();
        let watts = (0..channels.len()).map(|i| live.watts(i)).collect();
        // Read after the joules, as `totals` does, so that both give the same point.
        let last = live.last_reading_ns.load(Ordering::Acquire);
        (
            (last > 0).then(|| ns_to_s(last)),
            live.steps_marked.load(Ordering::Relaxed),
            top_level_joules,
            watts,
        )
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
