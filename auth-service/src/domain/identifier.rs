//! What a person types to sign in: their email or their username.

use super::{Email, Username};

/// Longest identifier looked at: the longest email address.
const MAX_CHARS: usize = 254;

/// A login identifier as typed: trimmed and lowercased (emails and usernames are both
/// case-insensitive), 1 to 254 characters. It is not yet known to name anyone: a typo is a
/// valid identifier that names nobody, answered like a wrong password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginIdentifier(String);

/// Whom an identifier can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Email(Email),
    Username(Username),
    /// Neither a valid email nor a valid username: no account can match.
    Nobody,
}

impl LoginIdentifier {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        match trimmed.chars().count() {
            0 => Err("identifier is required".to_owned()),
            n if n > MAX_CHARS => Err(format!("identifier must be at most {MAX_CHARS} characters")),
            _ => Ok(Self(trimmed.to_lowercase())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An identifier with an `@` is an email, any other a username.
    pub fn lookup(&self) -> Lookup {
        if self.0.contains('@') {
            Email::parse(&self.0).map_or(Lookup::Nobody, Lookup::Email)
        } else {
            Username::parse(&self.0).map_or(Lookup::Nobody, Lookup::Username)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimmed_lowercased_and_bounded() {
        assert_eq!(LoginIdentifier::parse("  Ana ").unwrap().as_str(), "ana");
        assert!(LoginIdentifier::parse("   ").is_err());
        assert!(LoginIdentifier::parse(&"é".repeat(254)).is_ok());
        assert!(LoginIdentifier::parse(&"é".repeat(255)).is_err());
    }

    #[test]
    fn an_at_sign_makes_an_email() {
        let lookup = |s: &str| LoginIdentifier::parse(s).unwrap().lookup();
        assert!(
            matches!(lookup("Ana@Example.com"), Lookup::Email(e) if e.as_str() == "ana@example.com")
        );
        assert!(matches!(lookup("ana_b"), Lookup::Username(u) if u.as_str() == "ana_b"));
        assert_eq!(lookup("not@an@email"), Lookup::Nobody);
        assert_eq!(lookup("x"), Lookup::Nobody);
    }
}
