//! Uploaded sources and build outputs, by digest: the content-addressed store on disk
//! ([`store`]) and moving blobs over gRPC streams ([`stream`]).

pub mod store;
pub mod stream;
