//! airlock gRPC API v1: generated client and server code for the job service
//! (clients) and the runner service (runners), plus the encoded descriptor set
//! that the controller serves through gRPC reflection.

/// Generated types and services of package `airlock.v1`.
#[allow(missing_docs, missing_debug_implementations, clippy::all)]
pub mod v1 {
    tonic::include_proto!("airlock.v1");
}

/// The encoded `FileDescriptorSet` of `airlock/v1/*.proto`, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("airlock_v1_descriptor");

pub mod auth;
pub mod tls;
