//! Maps the core's errors to the exception classes of `hf_eco2ai.errors`, so Python callers
//! catch the same classes whichever layer raised.

use pyo3::prelude::*;

use crate::error::CoreError;

fn raise(py: Python<'_>, class_name: &str, message: &str) -> PyErr {
    let instance = py
        .import("hf_eco2ai.errors")
        .and_then(|module| module.getattr(class_name))
        .and_then(|class| class.call1((message,)));
    match instance {
        Ok(instance) => PyErr::from_value(instance),
        Err(import_failed) => import_failed,
    }
}

pub fn to_py(py: Python<'_>, error: CoreError) -> PyErr {
    match error {
        CoreError::Config(m) => raise(py, "ConfigurationError", &m),
        CoreError::Unavailable(m) => raise(py, "SensorUnavailableError", &m),
        CoreError::Thread(m) => raise(py, "SamplerError", &m),
    }
}

pub trait IntoPyResult<T> {
    fn into_py_result(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, CoreError> {
    fn into_py_result(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}
