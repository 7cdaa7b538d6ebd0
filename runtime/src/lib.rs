//! Run-time code both processes of Baat Cheet Auth need in the same form: reading the
//! configuration from the environment with errors that name the variable, installing the log
//! subscriber, waiting for a shutdown signal, and reading a bearer header. It holds no rule of
//! the service and nothing of the contract (that is the API crate).

pub mod bearer;
pub mod env;
pub mod net;
pub mod shutdown;
pub mod telemetry;
