//! The attack suite: every attack the security review found, performed over real gRPC
//! against the real service, on the embedded backend (SQLite) and on the production backends
//! (Redis + MongoDB via SecantusDB), with mail through a real SMTP server (aiosmtpd). Each test
//! asserts that the attack fails and the victim is unharmed.

mod arena;

mod garbage;
mod jwt;
mod login;
mod mail;
mod parsers;
mod sessions;
mod signup;
mod trust;
