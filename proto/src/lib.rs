//! latchkey-proto: the generated code for the `latchkey.v1` gRPC contract.
//!
//! Only generated types live here, and the one encoding both edges share for credentials in
//! an `authorization` header ([`credentials`]). Translation to domain types belongs in
//! `latchkey-auth` (server side) and `latchkey-gateway` (client side).

pub mod credentials;

/// `latchkey.v1`: messages, the `AuthService` server trait and its client.
pub mod v1 {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("latchkey.v1");
}

/// The encoded file descriptor set, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/latchkey_descriptor.bin"));
