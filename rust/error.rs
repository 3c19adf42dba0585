//! The core's one error type. The binding maps each variant to one Python exception.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// A bad argument: names the argument, the value and what is allowed.
    Config(String),
    /// A sensor asked for cannot be used here; says why and how to fix it.
    Unavailable(String),
    /// The sampler thread could not be started or joined.
    Thread(String),
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::Config(m) | CoreError::Unavailable(m) | CoreError::Thread(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for CoreError {}

pub type CoreResult<T> = Result<T, CoreError>;
