//! `csv_rows`: rows of the per-step CSV file, formatted with the interpreter released.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::csv_text::{append_rows, Column};

/// One column's data, held while the interpreter is released.
enum Data<'py> {
    Constant(Bound<'py, PyBytes>),
    Int(Bound<'py, PyBytes>),
    IntOrEmpty(Bound<'py, PyBytes>),
    Float(Bound<'py, PyBytes>),
    Lookup(Bound<'py, PyBytes>, Vec<(i64, Vec<u8>)>),
}

/// The CSV text (bytes, CRLF line ends) of `n_rows` rows of `columns`, a list of `(kind, data)`:
///
/// - `("constant", bytes)`: the same, already quoted, cell on every row;
/// - `("int", bytes)` and `("int_or_empty", bytes)`: little-endian int64 per row (a negative
///   `int_or_empty` is an empty cell);
/// - `("float", bytes)`: little-endian float64 per row, written as Python's `repr`;
/// - `("lookup", (codes, [(code, cell), ...]))`: int64 codes, each written as its quoted cell.
///
/// The values are formatted with the interpreter released, so other threads run meanwhile.
#[pyfunction]
pub fn csv_rows<'py>(
    py: Python<'py>,
    n_rows: usize,
    columns: Vec<(String, Bound<'py, PyAny>)>,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut data = Vec::with_capacity(columns.len());
    for (kind, value) in &columns {
        let bytes = || value.cast::<PyBytes>().cloned();
        data.push(match kind.as_str() {
            "constant" => Data::Constant(bytes()?),
            "int" => Data::Int(bytes()?),
            "int_or_empty" => Data::IntOrEmpty(bytes()?),
            "float" => Data::Float(bytes()?),
            "lookup" => {
                let (codes, cells): (Bound<'py, PyBytes>, Vec<(i64, Vec<u8>)>) = value.extract()?;
                Data::Lookup(codes, cells)
            }
            other => {
                return Err(PyValueError::new_err(format!(
                    "column kind {other:?} is unknown: use constant, int, int_or_empty, float or lookup"
                )))
            }
        });
    }
    let columns: Vec<Column> = data
        .iter()
        .map(|column| match column {
            Data::Constant(bytes) => Column::Constant(bytes.as_bytes()),
            Data::Int(bytes) => Column::Int(bytes.as_bytes()),
            Data::IntOrEmpty(bytes) => Column::IntOrEmpty(bytes.as_bytes()),
            Data::Float(bytes) => Column::Float(bytes.as_bytes()),
            Data::Lookup(codes, cells) => Column::Lookup {
                codes: codes.as_bytes(),
                cells,
            },
        })
        .collect();
    // The bytes objects are immutable and `data` holds them, so they outlive the release.
    let text = py.detach(|| {
        // A step file's row is 100-200 bytes with a few channels: one allocation for most chunks.
        let mut out = Vec::with_capacity(n_rows * 160);
        append_rows(n_rows, &columns, &mut out).map(|()| out)
    });
    match text {
        Ok(text) => Ok(PyBytes::new(py, &text)),
        Err(reason) => Err(PyValueError::new_err(reason)),
    }
}
