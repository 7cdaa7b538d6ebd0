//! Test servers started by the tests themselves, shared by the test binaries.

pub mod mongo_server;
pub mod process;
pub mod redis_server;
pub mod smtp_server;
