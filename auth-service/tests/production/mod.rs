//! The service on its production backends: users in MongoDB (SecantusDB, or `MONGODB_URI`),
//! state in a redis-server the tests start, mail through a real SMTP server (aiosmtpd).
//! Faults (a backend stopped mid-run), two instances sharing the backends, a Redis Cluster
//! with a failover, and a scan of everything stored for secrets.

mod cluster;
mod faults;
mod flow;
mod two_instances;
