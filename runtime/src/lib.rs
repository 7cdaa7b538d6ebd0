//! Run-time code both processes of Baat Cheet Auth need in the same form: what `main` does,
//! reading the configuration from the environment with errors that name the variable,
//! installing the log subscriber, waiting for a shutdown signal, reading a bearer header, and
//! the client network a limit is keyed by. It holds no rule of the service and nothing of the
//! contract (that is the API crate).

pub mod bearer;
pub mod cli;
pub mod env;
pub mod net;
pub mod shutdown;
pub mod telemetry;
