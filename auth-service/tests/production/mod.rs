//! The service on its production backends: users in MongoDB (SecantusDB, or `MONGODB_URI`),
//! state in a redis-server the tests start, mail through a real SMTP server (aiosmtpd).
//! Faults (a backend stopped mid-run), two instances sharing the backends, and a scan of
//! everything stored for secrets.

mod faults;
mod flow;
mod two_instances;
