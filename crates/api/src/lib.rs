//! Concord's network contract: the gRPC API generated from `proto/concord.proto` (tonic + prost,
//! `protoc` from a crate at build time), the development PKI with roles in certificates
//! ([`pki`]), and mutual TLS with identities taken from certificates ([`tls`]) — DESIGN.md §5.

pub mod chunks;
pub mod deployment;
pub mod evidence;
pub mod exchange;
pub mod lifecycle;
pub mod logging;
pub mod operations;
pub mod pki;
pub mod submission;
pub mod tls;

/// Generated from `proto/concord.proto`.
pub mod v1 {
    tonic::include_proto!("concord.v1");
}
