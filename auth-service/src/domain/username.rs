//! [`Username`]: the public name of an account, checked at the parse (README, "Rules it
//! enforces") and unique case-insensitively through [`Username::key`], the form the stores index.

use std::fmt;

/// A username: trimmed, 3-30 characters of ASCII letters, digits, `_`, `.` or `-`.
/// No `@`, so a login identifier is an email exactly when it contains one.
/// Uniqueness is case-insensitive; [`Username::key`] is the form the stores index.
#[derive(Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        let len = name.chars().count();
        if len == 0 {
            return Err("username is required".into());
        }
        if !(3..=30).contains(&len) {
            return Err("username must be 3 to 30 characters".into());
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err("username may contain only letters, digits, '_', '.' and '-'".into());
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lowercased form that uniqueness is checked on.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Username({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_checks_length() {
        assert_eq!(Username::parse("  ana_b ").unwrap().as_str(), "ana_b");
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse(&"a".repeat(31)).is_err());
        assert!(Username::parse(&"a".repeat(30)).is_ok());
    }

    #[test]
    fn refuses_at_and_spaces() {
        assert!(Username::parse("ana@x").is_err());
        assert!(Username::parse("an a").is_err());
    }
}
