//! Signet: a gRPC signing agent that keeps keys inside an HSM and signs on behalf of applications.
//!
//! A request crosses few files: [`grpc::service`] validates and converts it, [`signer::Signer`]
//! applies the domain rules (key type, limits, SWT3 formula, verify-after-sign), and
//! [`executor::Executor`] hands the blocking HSM call to a [`backend::Backend`] on a worker thread.
//! [`error::Error`] is the one error type; [`grpc::status`] is the one mapping to gRPC codes.
#![forbid(unsafe_code)]

pub mod audit;
pub mod backend;
pub mod bench;
pub mod config;
pub mod error;
pub mod executor;
pub mod grpc;
pub mod identity;
pub mod key;
pub mod keys;
pub mod metrics;
pub mod policy;
pub mod public_key;
pub mod secret;
pub mod server;
pub mod service;
pub mod signer;
pub mod sqooler;
pub mod swt3;

pub use error::{Error, ErrorKind};
