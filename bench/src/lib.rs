//! What `latchkey-bench` (the load generator) and `latchkey-ceiling` (the floor servers)
//! share: the generated code of the bench-only `Ping` gRPC service. Nothing here is part of
//! Latchkey.

/// `latchkey.bench.v1`: the `Ping` service, its server trait and its client.
pub mod ping {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("latchkey.bench.v1");
}
