//! A mistake in what the user typed: the error every command reports with the argument's name and exit status 2.

/// A mistake in what the user typed: reported with the argument's name, exit status 2.
#[derive(Debug)]
pub struct ArgumentError {
    pub argument: String,
    pub reason: String,
}

impl std::fmt::Display for ArgumentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.argument, self.reason)
    }
}

impl std::error::Error for ArgumentError {}

/// Wraps an error as a mistake in `argument`.
pub fn argument_error(argument: &str, reason: impl std::fmt::Display) -> anyhow::Error {
    ArgumentError {
        argument: argument.to_owned(),
        reason: reason.to_string(),
    }
    .into()
}
