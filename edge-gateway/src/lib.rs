//! The edge gateway of Baat Cheet Auth: browsers speak HTTP/JSON with cookies, the gateway speaks
//! gRPC to the auth service. It holds no auth rule: every decision travels back from the service
//! as a gRPC code and reason, and [`error`] turns it into HTTP. The crate README is the reference
//! for configuration, routes, status mapping and the cookie/CORS/CSRF policy.

pub mod api;
pub mod client_ip;
pub mod config;
pub mod cookies;
pub mod cors;
pub mod csrf;
pub mod error;
pub mod healthcheck;
pub mod json;
pub mod metrics;
pub mod openapi;
pub mod page;
pub mod pool;
pub mod ratelimit;
pub mod request_id;
pub mod response;
pub mod routes;
pub mod security;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod upstream;
pub mod views;
