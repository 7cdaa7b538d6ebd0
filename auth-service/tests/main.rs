//! Every integration test of the service, in one binary (one link instead of five): the real
//! service on a random port over real gRPC, on every backend. A module per area:
//!
//! - [`api`]: every RPC with its success and failure paths, on the embedded backend.
//! - [`attacks`]: each attack the security review found, on SQLite and on Redis + MongoDB.
//! - [`conformance`]: one suite for the store traits, run against every backend.
//! - [`production`]: MongoDB + Redis + SMTP, faults, two instances.
//! - [`docker`]: the images and the compose file, checked by parsing them.
//!
//! [`helpers`] starts the service for a test; [`env`] starts the production backends.

mod env;
mod helpers;

pub mod api;
mod attacks;
mod conformance;
mod docker;
mod internal;
mod production;
