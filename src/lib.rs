//! The gRPC contract of Baat Cheet Auth, `baatcheet.auth.v1`, generated from `proto/` at build
//! time. Both the service and the gateway depend on this crate and nothing else shares types.
//! With the `verifier` feature, `AccessTokenVerifier` checks access tokens offline for the
//! chat's own services (module `verifier`). With `json`, `google.protobuf.Struct` converts to
//! and from JSON values (module `json`).

#![allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]

/// Generated messages, server and client for `baatcheet.auth.v1`.
pub mod v1 {
    tonic::include_proto!("baatcheet.auth.v1");
}

/// Encoded `FileDescriptorSet` of every proto file, including the well-known types it imports,
/// for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/baatcheet_auth_descriptor.bin"));

#[cfg(feature = "json")]
pub mod json;

#[cfg(feature = "verifier")]
pub mod verifier;

#[cfg(feature = "verifier")]
pub use verifier::AccessTokenVerifier;
