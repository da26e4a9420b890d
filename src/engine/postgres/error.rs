//! What talking to PostgreSQL can fail with, each knowing its kind: a malformed or missing
//! URL is the user's to fix (exit 2); a server that is down, refuses or has the wrong
//! schema is the environment's (exit 1). Messages never hold the URL's password.

use crate::engine::error::EngineError;
use crate::error::{Classify, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// `RUNNER_POSTGRES_URL` is missing or cannot be parsed.
    #[error("{0}")]
    Url(String),
    /// The server cannot be reached, or the connection broke.
    #[error("{0}")]
    Down(String),
    /// The database's schema does not fit this runner.
    #[error("{0}")]
    Schema(String),
    /// The server answered with an error.
    #[error("{0}")]
    Query(String),
}

impl PgError {
    /// A lost or refused connection (worth retrying), as opposed to an answer.
    pub fn is_transient(&self) -> bool {
        matches!(self, PgError::Down(_))
    }
}

impl Classify for PgError {
    fn kind(&self) -> ErrorKind {
        match self {
            PgError::Url(_) => ErrorKind::Usage,
            _ => ErrorKind::Infra,
        }
    }
}

impl From<PgError> for EngineError {
    fn from(e: PgError) -> Self {
        match e {
            PgError::Url(m) => EngineError::Config(m),
            e => EngineError::Infra(e.to_string()),
        }
    }
}

/// SQLSTATE classes that mean "the connection, not the statement": connection exceptions
/// (08), operator intervention such as a shutdown or a server starting up (57), and
/// insufficient resources (53, e.g. too many connections).
pub fn transient_sqlstate(code: &str) -> bool {
    ["08", "57", "53"].iter().any(|c| code.starts_with(c))
}

/// Classify a driver error, with `what` saying what was being done. `scrub` removes the
/// password should the driver ever echo it.
pub fn classify(
    e: &tokio_postgres::Error,
    what: &str,
    scrub: &dyn Fn(String) -> String,
) -> PgError {
    let text = scrub(crate::session::runtime::error_chain(e));
    if is_transient(e) {
        PgError::Down(format!("{what}: {text}"))
    } else {
        PgError::Query(format!("{what}: {text}"))
    }
}

/// Whether a driver error is about the connection (retry after reconnecting) rather than
/// the statement (an answer, or a bug: retrying would not help).
fn is_transient(e: &tokio_postgres::Error) -> bool {
    if let Some(code) = e.code() {
        return transient_sqlstate(code.code());
    }
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    let text = e.to_string();
    e.is_closed()
        || io
        || [
            "error connecting",
            "error communicating",
            "timeout",
            "unexpected message",
        ]
        .iter()
        .any(|p| text.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_classes_are_transient() {
        assert!(transient_sqlstate("08006"));
        assert!(transient_sqlstate("57P01"));
        assert!(transient_sqlstate("57P03"));
        assert!(transient_sqlstate("53300"));
        assert!(!transient_sqlstate("42P01"));
        assert!(!transient_sqlstate("23505"));
    }

    #[test]
    fn kinds() {
        assert_eq!(PgError::Url("x".into()).kind(), ErrorKind::Usage);
        assert_eq!(PgError::Down("x".into()).kind(), ErrorKind::Infra);
        assert_eq!(PgError::Schema("x".into()).kind(), ErrorKind::Infra);
    }
}
