//! Signet: a gRPC signing agent that keeps keys inside an HSM and signs on behalf of applications.
//!
//! A request crosses few files: [`grpc::service`] validates and converts it, [`signer::Signer`]
//! applies the domain rules (key type, limits, SWT3 formula, verify-after-sign), and the
//! signer's executor hands the blocking HSM call to a [`Backend`] on a worker thread. [`Error`]
//! is the one error type; [`grpc::status`] is the one mapping to gRPC codes. [`Config::load`]
//! reads the configuration into typed values, [`backend::open`] opens the backend it names,
//! and [`server::serve`] runs the agent.
//!
//! The modules below are the ones the `signet` binary, the tests and the fuzz targets reach
//! into; the domain types are re-exported here and their modules are private.
#![forbid(unsafe_code)]

pub mod audit;
pub mod backend;
pub mod bench;
pub mod config;
pub mod error;
mod executor;
pub mod grpc;
mod identity;
mod key;
pub mod keys;
mod metrics;
mod policy;
mod public_key;
mod secret;
pub mod server;
pub mod service;
pub mod signer;
pub mod sqooler;
pub mod swt3;
pub mod versions;

pub use backend::{Backend, HsmState, Opened};
pub use config::Config;
pub use error::{Error, ErrorKind, HsmError, HsmFault};
pub use identity::{Caller, Identity};
pub use key::{Algorithm, KeyDescriptor, SignatureFormat};
pub use metrics::Metrics;
pub use policy::Policy;
pub use public_key::PublicKey;
pub use secret::Secret;
pub use swt3::Anchor;
