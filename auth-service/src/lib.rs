//! Baat Cheet Auth service: registration, one-time codes, passwords, tokens and sessions over
//! gRPC (`baatcheet.auth.v1.AuthService`).
//!
//! Layers, in one direction: [`grpc`] (transport) → [`flows`] (use cases) → [`domain`] and the
//! [`store`] / [`mail`] traits. Backends implement the traits and are chosen in [`backends`];
//! [`startup`] wires it all. Secrets never reach a log: passwords, codes and tokens are wrapped
//! types whose Debug prints `<redacted>`, and flows skip them in their spans.

pub mod backends;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod flows;
pub mod grpc;
pub mod healthcheck;
pub mod keys;
pub mod mail;
pub mod startup;
pub mod store;
