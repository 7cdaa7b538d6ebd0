//! Service credentials: the bearer tokens the chat's own services (and the edge gateway) call
//! `InternalAuthService` with. The service keeps only their SHA-256, one `name:hash` line per
//! token (SERVICE_TOKENS / SERVICE_TOKENS_FILE), so the name can appear in logs and nothing
//! that is read from config can be replayed. `auth-service token new NAME` mints one.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of minted tokens, so a leaked one is recognisable (secret scanners, logs).
const PREFIX: &str = "bcs_";

/// The accepted service tokens, by name.
#[derive(Clone, Default)]
pub struct ServiceTokens {
    entries: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for ServiceTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("ServiceTokens")
            .field("names", &names)
            .finish()
    }
}

/// A service name: 1-64 of `a-z A-Z 0-9 _ . -`, as it appears in logs.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "service name {name:?} must be 1-64 letters, digits, '_', '.' or '-'"
        ))
    }
}

impl ServiceTokens {
    /// Reads `name:sha256-hex` entries, one per line or separated by commas; blank lines and
    /// `#` comments are skipped. A name may appear once.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut entries: Vec<(String, [u8; 32])> = Vec::new();
        for raw in text.split(['\n', ',']) {
            let line = raw.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let (name, hex) = line
                .split_once(':')
                .ok_or_else(|| format!("{line:?} is not name:sha256-hex"))?;
            let (name, hex) = (name.trim(), hex.trim());
            check_name(name)?;
            let hash = decode_hex(hex).ok_or_else(|| {
                format!("the hash of {name:?} must be 64 hex digits (the token's SHA-256)")
            })?;
            if entries.iter().any(|(n, _)| n == name) {
                return Err(format!("service name {name:?} appears twice"));
            }
            entries.push((name.to_owned(), hash));
        }
        Ok(Self { entries })
    }

    /// Both sources together (either may be empty).
    pub fn merge(mut self, other: Self) -> Result<Self, String> {
        for (name, hash) in other.entries {
            if self.entries.iter().any(|(n, _)| *n == name) {
                return Err(format!("service name {name:?} appears twice"));
            }
            self.entries.push((name, hash));
        }
        Ok(self)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }

    /// The name of the service `token` belongs to. Every entry is compared, in constant time,
    /// whatever matches: the time taken says nothing about which or how much matched.
    pub fn identify(&self, token: &str) -> Option<&str> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (name, hash) in &self.entries {
            if bool::from(hash.ct_eq(&presented)) {
                found = Some(name.as_str());
            }
        }
        found
    }
}

/// A fresh token for service `name` and the line that makes the service accept it.
pub fn mint(name: &str) -> Result<(String, String), String> {
    check_name(name)?;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| format!("the OS random source failed: {e}"))?;
    let token = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let line = format!("{name}:{}", hash_hex(&token));
    Ok((token, line))
}

/// SHA-256 of a token, lowercase hex: what SERVICE_TOKENS holds.
pub fn hash_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_identified_by_their_line() {
        let (token, line) = mint("socket-1").unwrap();
        assert!(token.starts_with(PREFIX));
        let (other, other_line) = mint("gateway").unwrap();
        let tokens = ServiceTokens::parse(&format!("# ours\n{line}\n\n{other_line}\n")).unwrap();
        assert_eq!(tokens.identify(&token), Some("socket-1"));
        assert_eq!(tokens.identify(&other), Some("gateway"));
        assert_eq!(tokens.identify(&format!("{token}x")), None);
        assert_eq!(tokens.identify(""), None);
        // The hash itself is not a token.
        assert_eq!(tokens.identify(line.split_once(':').unwrap().1), None);
    }

    #[test]
    fn bad_entries_are_named() {
        assert!(ServiceTokens::parse("").unwrap().is_empty());
        assert!(ServiceTokens::parse("nohash").is_err());
        assert!(ServiceTokens::parse("a:1234").is_err());
        assert!(ServiceTokens::parse(&format!("bad name:{}", "0".repeat(64))).is_err());
        assert!(ServiceTokens::parse(&format!("a:{}", "g".repeat(64))).is_err());
        let dup = format!("a:{h},a:{h}", h = "0".repeat(64));
        assert!(ServiceTokens::parse(&dup).unwrap_err().contains("twice"));
        assert!(mint("").is_err());
    }
}
