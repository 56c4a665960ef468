//! Typed ids: a job id, a runner id and a lease token are all UUIDs, but never interchangeable.

use std::fmt;

use uuid::Uuid;

/// A request field that does not hold the id it should (the caller's error type wraps it,
/// e.g. as an invalid-argument status).
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BadId {
    /// The request field at fault.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

macro_rules! uuid_newtype {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a generated UUID.
            pub fn new(id: Uuid) -> Self {
                Self(id)
            }

            /// Parses the hyphenated form from a request field; the error names `field`.
            pub fn parse(field: &str, value: &str) -> Result<Self, BadId> {
                Uuid::try_parse(value).map(Self).map_err(|_| BadId {
                    field: field.to_owned(),
                    message: format!(concat!("`{}` is not ", $what, " (a UUID)"), value),
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

    };
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({})", self.0)
    }
}

impl fmt::Debug for RunnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunnerId({})", self.0)
    }
}

/// Redacted: a lease token authorizes calls about its job and must not reach logs.
impl fmt::Debug for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LeaseToken(<redacted>)")
    }
}

uuid_newtype!(
    /// Identifies a job.
    JobId,
    "a job id"
);
uuid_newtype!(
    /// Identifies a registered runner.
    RunnerId,
    "a runner id"
);
uuid_newtype!(
    /// Fencing token of one lease (one attempt of a job); required on every runner call about it.
    LeaseToken,
    "a lease token"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names_the_field() {
        let err = JobId::parse("job_id", "nope").unwrap_err();
        assert!(err.to_string().contains("job_id"), "{err}");
        let id = JobId::parse("job_id", "00000000-0000-4000-8000-000000000001").unwrap();
        assert_eq!(id.to_string(), "00000000-0000-4000-8000-000000000001");
    }
}
