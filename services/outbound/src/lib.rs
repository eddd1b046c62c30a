//! latchkey-outbound: the one HTTP client Latchkey uses to fetch URLs from the internet.
//! Client ID Metadata Documents (a `client_id` that is an https URL), a client's `jwks_uri`,
//! and later identity-provider metadata that operators configure.
//!
//! Every fetch takes a [`FetchPolicy`]: its size limit, total timeout, redirects, accepted
//! content types, and which addresses it may reach ([`Targets`]). The fetch is SSRF-safe by
//! construction: this crate resolves the name, checks every address ([`address`]), and opens
//! the socket itself, to a checked address only. It also owns the rate and concurrency
//! limits of outbound fetching, and reading a response's caching headers.
//!
//! What does not belong here: parsing or validating what is fetched (the core judges a
//! document), caching it (the store), and reading settings (the composition root passes
//! the CA file, the development switch and the limits in).

pub mod address;
mod error;
mod fetch;
mod freshness;
mod limits;
mod policy;
mod resolve;

pub use address::{AddressClass, Embedding, Refusal};
pub use error::{BuildError, FetchError, RedirectProblem, UrlProblem};
pub use fetch::{Fetched, Fetcher, FetcherBuilder};
pub use freshness::{CacheHeaders, Freshness};
pub use limits::{Limit, Limits, Rate};
pub use policy::{
    Accept, FetchPolicy, MAX_BODY_BYTES, MAX_REDIRECTS, MAX_TOTAL_TIMEOUT, PolicyError, Targets,
};
pub use resolve::{Resolve, Resolving, SystemResolver};
