//! The HTTP API's fixed shape, read by every module that depends on it: where it lives and
//! the largest body it takes. The router, the path-scoped cookies, the error messages and the
//! OpenAPI document all take these from here, so they cannot drift apart.

/// Largest request body accepted; auth requests are a few hundred bytes.
pub const BODY_LIMIT: usize = 16 * 1024;

/// Where the auth API lives. The path-scoped cookies name it too (see `cookies`): if it moved
/// without them, browsers would stop sending the refresh cookie.
pub const API_PREFIX: &str = "/api/auth";
