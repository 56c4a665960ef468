//! API errors: what a call can fail with, mapped onto gRPC status codes with readable messages.

use tonic::{Code, Status};

use crate::blobs::store::BlobError;
use crate::ids::BadId;
use crate::store::StoreError;

/// Why an API call failed. Converted into a [`Status`] at the gRPC boundary.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request field is malformed; the message names the field.
    #[error("{field}: {message}")]
    InvalidArgument {
        /// The request field at fault (e.g. `spec_json`, `job_id`).
        field: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// An unknown job, runner or output.
    #[error("{0}")]
    NotFound(String),
    /// The call is not allowed in the current state (e.g. a stale lease token).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Something with that name exists already (e.g. an output path uploaded twice).
    #[error("{0}")]
    AlreadyExists(String),
    /// Uploaded bytes do not match what the sender claimed.
    #[error("{0}")]
    DataLoss(String),
    /// The caller may not have what it asked for (e.g. a build token its job may not get).
    #[error("{0}")]
    PermissionDenied(String),
    /// An upload exceeds a configured limit.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The database failed.
    #[error("controller storage failed: {0}")]
    Store(#[source] StoreError),
    /// The blob store failed.
    #[error("controller blob storage failed: {0}")]
    Blob(#[from] BlobError),
}

impl From<BadId> for ApiError {
    fn from(e: BadId) -> Self {
        Self::InvalidArgument {
            field: e.field,
            message: e.message,
        }
    }
}

impl ApiError {
    /// An [`ApiError::InvalidArgument`] about `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The gRPC code this error maps to.
    pub fn code(&self) -> Code {
        match self {
            ApiError::InvalidArgument { .. } => Code::InvalidArgument,
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::AlreadyExists(_) => Code::AlreadyExists,
            ApiError::DataLoss(_) => Code::DataLoss,
            ApiError::PermissionDenied(_) => Code::PermissionDenied,
            ApiError::ResourceExhausted(_) => Code::ResourceExhausted,
            ApiError::Blob(BlobError::TooLarge { .. }) => Code::ResourceExhausted,
            ApiError::Store(_) | ApiError::Blob(_) => Code::Internal,
        }
    }
}

/// Domain outcomes the store reports (unknown ids, stale leases, duplicates) keep their own
/// codes; everything else is an internal storage failure.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::JobNotFound(_) | StoreError::RunnerNotFound(_) => {
                ApiError::NotFound(e.to_string())
            }
            StoreError::StaleLease { .. } => ApiError::FailedPrecondition(e.to_string()),
            StoreError::OutputExists { .. } => ApiError::AlreadyExists(e.to_string()),
            other => ApiError::Store(other),
        }
    }
}

impl From<BadId> for Status {
    fn from(e: BadId) -> Self {
        ApiError::from(e).into()
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        let code = e.code();
        if code == Code::Internal {
            tracing::error!(error = %e, "internal error");
        }
        Status::new(code, e.to_string())
    }
}
