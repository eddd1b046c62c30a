//! latchkey-proto: the generated code for the `latchkey.v1` gRPC contract.
//!
//! Only generated types live here, and what both edges must spell the same way: credentials in
//! an `authorization` header ([`credentials`]), and the OAuth error code with its status
//! detail ([`oauth_error`]). Translation to domain types belongs in `latchkey-auth` (server
//! side) and `latchkey-gateway` (client side).

pub mod bearer;
pub mod credentials;
pub mod oauth_error;

/// `latchkey.v1`: messages, the `AuthService` server trait and its client.
pub mod v1 {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("latchkey.v1");
}

/// The encoded file descriptor set, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/latchkey_descriptor.bin"));
