//! What the tests of both processes share, so it is written once: real servers the tests
//! start on free loopback ports (redis-server, SecantusDB for MongoDB, aiosmtpd for SMTP), and
//! reading the mail the service sent the way a person does (the MIME text part, the line that
//! is the code), the codes of an authenticator app, and a passkey in software. Nothing here
//! knows the service's types: it is the world around the service.
//!
//! Every server is a child that dies with the test process ([`process::spawn_from_keeper`]).

pub mod mail;
pub mod mongo_server;
pub mod passkey;
pub mod process;
pub mod redis_server;
pub mod smtp_server;
pub mod totp;
