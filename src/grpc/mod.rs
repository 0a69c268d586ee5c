//! The gRPC layer: generated `signet.v1` types, the `Signer` service, and the one mapping from
//! domain errors to gRPC status codes. Only this module and `server` know tonic (the
//! command-line client uses the `signet-client` crate).

pub mod codec;
pub mod convert;
pub mod delivery;
pub mod oversize;
pub mod service;
pub mod stamps;
pub mod status;

/// Generated protobuf and tonic code for `proto/signet/v1/signer.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("signet.v1");

    /// The encoded `FileDescriptorSet`, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/signet_descriptor.bin"));
}
