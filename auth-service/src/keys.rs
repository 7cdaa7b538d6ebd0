//! Signing key and server secret: from config, or generated once into the data folder for
//! development (with a log line saying so, since production must configure both).

use std::{fs, io::Write, path::Path};

use base64::{Engine, engine::general_purpose::STANDARD};
use secrecy::ExposeSecret;

use crate::config::{ConfigError, KeysConfig};
use crate::crypto::{ServerSecret, SigningKey};

const DEV_KEY_FILE: &str = "jwt-ed25519.pem";
const DEV_SECRET_FILE: &str = "auth-secret.b64";

/// Writes a new file readable by its owner only; never replaces an existing one.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

/// Reads `path`, or creates it with `make()` when missing.
fn read_or_create(
    path: &Path,
    var: &'static str,
    make: impl FnOnce() -> Result<String, String>,
) -> Result<String, ConfigError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = make().map_err(|m| ConfigError::new(var, m))?;
            match write_private(path, &text) {
                Ok(()) => {
                    tracing::warn!(path = %path.display(), "{var} is not set: generated a development value and kept it in the data folder; set {var} in production");
                    Ok(text)
                }
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => fs::read_to_string(path)
                    .map_err(|e| {
                        ConfigError::new(var, format!("cannot read {}: {e}", path.display()))
                    }),
                Err(e) => Err(ConfigError::new(
                    var,
                    format!("cannot write {}: {e}", path.display()),
                )),
            }
        }
        Err(e) => Err(ConfigError::new(
            var,
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

pub fn signing_key(keys: &KeysConfig, data_dir: &Path) -> Result<SigningKey, ConfigError> {
    let (pem, var) = match &keys.jwt_private_key_pem {
        Some(pem) => (pem.expose_secret().to_owned(), "JWT_PRIVATE_KEY"),
        None => (
            read_or_create(
                &data_dir.join(DEV_KEY_FILE),
                "JWT_PRIVATE_KEY",
                SigningKey::generate_pem,
            )?,
            "JWT_PRIVATE_KEY",
        ),
    };
    SigningKey::from_pem(&pem, keys.jwt_key_id.clone()).map_err(|m| ConfigError::new(var, m))
}

pub fn server_secret(keys: &KeysConfig, data_dir: &Path) -> Result<ServerSecret, ConfigError> {
    let encoded = match &keys.auth_secret {
        Some(s) => s.expose_secret().trim().to_owned(),
        None => read_or_create(&data_dir.join(DEV_SECRET_FILE), "AUTH_SECRET", || {
            Ok(STANDARD.encode(ServerSecret::generate()))
        })?
        .trim()
        .to_owned(),
    };
    let bytes = STANDARD.decode(&encoded).map_err(|_| {
        ConfigError::new(
            "AUTH_SECRET",
            "must be base64 (for example `openssl rand -base64 32`)",
        )
    })?;
    ServerSecret::new(bytes).map_err(|m| ConfigError::new("AUTH_SECRET", m))
}
