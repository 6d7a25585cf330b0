//! Exit codes that mean something to cron and to scripts (BSD sysexits where one fits).

/// A run-time failure not covered below.
pub const FAILURE: i32 = 1;
/// The input data is not what it should be: a wrong format (most lines
/// rejected), a corrupt or truncated file.
pub const DATA_ERR: i32 = 65;
/// An input file is missing or unreadable.
pub const NO_INPUT: i32 = 66;
/// Kafka (or another service) is unavailable.
pub const UNAVAILABLE: i32 = 69;
/// Output could not be written.
pub const CANT_CREATE: i32 = 73;
/// Another run holds a lock (warehouse, partition, date; ingest: the state
/// directory), or the group gave the run no partition: try again later.
pub const TEMP_FAIL: i32 = 75;
/// The configuration is invalid.
pub const CONFIG: i32 = 78;
/// Interrupted (SIGINT/SIGTERM) before the work was done: 128 + SIGINT.
pub const INTERRUPTED: i32 = 130;

/// An error with a chosen exit code and an optional hint.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub code: i32,
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            hint: None,
        }
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

/// The exit code for an error: a [`Failure`] anywhere in the chain decides, else [`FAILURE`].
pub fn code_for(e: &anyhow::Error) -> i32 {
    e.chain()
        .find_map(|c| c.downcast_ref::<Failure>().map(|f| f.code))
        .unwrap_or(FAILURE)
}
