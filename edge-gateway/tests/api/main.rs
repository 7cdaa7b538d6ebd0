//! Integration tests over real HTTP: a real auth service (gRPC on a random port, SQLite in
//! memory, .eml mail folder) and a real gateway (random port) in this process. One binary with a
//! module per feature keeps link time down.

mod account;
mod cookies;
mod csrf;
mod edge;
mod helpers;
mod metrics;
pub mod mfa;
mod parsers;
mod passkeys;
mod password;
mod profile;
mod rate_limit;
mod registration;
mod service_token;
mod session;
mod upstream;
