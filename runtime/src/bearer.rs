//! `Authorization: Bearer <token>`: one reading for the gRPC metadata and the HTTP header.

/// The token of a bearer credential: the scheme case-insensitively, spaces around trimmed;
/// `None` for another scheme or an empty token.
pub fn token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_token_of_the_bearer_scheme_only() {
        assert_eq!(token("Bearer abc"), Some("abc"));
        assert_eq!(token("  bearer   abc  "), Some("abc"));
        assert_eq!(token("Basic abc"), None);
        assert_eq!(token("Bearer "), None);
        assert_eq!(token("Bearer"), None);
        assert_eq!(token(""), None);
    }
}
