//! Integration tests: the real service on a random port, real gRPC over TCP, real SQLite,
//! codes read from the mail the service wrote. One binary, a module per feature.

mod concurrency;
mod login;
mod password;
mod process;
mod registration;
mod sessions;
mod surface;
mod tokens;
