//! Signing key and server secret: from config, or generated once into the data folder for
//! development (with a log line saying so, since production must configure both); and the
//! automatic rotation of signing keys ([`rotation`]).

pub mod rotation;

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

/// The configured keys, as [`signing_keys`] reads them; none with the automatic rotation and
/// no key configured, where the rotation's keys sign from the start.
pub fn configured_keys(
    keys: &KeysConfig,
    data_dir: &Path,
) -> Result<Option<(SigningKey, Vec<SigningKey>)>, ConfigError> {
    let none_configured = keys.jwt_private_key_pem.is_none() && keys.jwt_private_keys_dir.is_none();
    if keys.rotation.is_none() || !none_configured {
        return signing_keys(keys, data_dir).map(Some);
    }
    if keys.jwt_key_id.is_some() {
        return Err(ConfigError::new(
            "JWT_KEY_ID",
            "names a configured key, and none is (JWT_PRIVATE_KEY or JWT_PRIVATE_KEYS_DIR): the \
             rotation names its keys itself; unset it",
        ));
    }
    Ok(None)
}

/// The signing key and the keys kept beside it. With JWT_PRIVATE_KEYS_DIR, every `<kid>.pem`
/// in it is published and verifies, and the one JWT_KEY_ID names (or the only one) signs; else
/// the one key of [`signing_key`].
pub fn signing_keys(
    keys: &KeysConfig,
    data_dir: &Path,
) -> Result<(SigningKey, Vec<SigningKey>), ConfigError> {
    const VAR: &str = "JWT_PRIVATE_KEYS_DIR";
    let Some(dir) = &keys.jwt_private_keys_dir else {
        return Ok((signing_key(keys, data_dir)?, Vec::new()));
    };
    if keys.jwt_private_key_pem.is_some() {
        return Err(ConfigError::new(
            VAR,
            "set either JWT_PRIVATE_KEY (or its _FILE) or JWT_PRIVATE_KEYS_DIR, not both",
        ));
    }
    let unreadable =
        |e: std::io::Error| ConfigError::new(VAR, format!("cannot read {}: {e}", dir.display()));
    let mut paths: Vec<std::path::PathBuf> = fs::read_dir(dir)
        .map_err(unreadable)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(unreadable)?;
    paths.retain(|p| p.extension().is_some_and(|e| e == "pem"));
    paths.sort();
    let mut found = Vec::new();
    for path in &paths {
        let kid = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| {
                (1..=64).contains(&s.len())
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            })
            .ok_or_else(|| {
                ConfigError::new(
                    VAR,
                    format!(
                        "{}: the file's name is its key id: 1-64 letters, digits, '-', '_' or '.'",
                        path.display()
                    ),
                )
            })?;
        // A key file is a small regular file: not a pipe that blocks or a device without end.
        let meta = fs::metadata(path)
            .map_err(|e| ConfigError::new(VAR, format!("cannot read {}: {e}", path.display())))?;
        if !meta.is_file() || meta.len() > 8 * 1024 {
            return Err(ConfigError::new(
                VAR,
                format!(
                    "{}: not a key file (a PEM file of at most 8 KiB)",
                    path.display()
                ),
            ));
        }
        let pem = fs::read_to_string(path)
            .map_err(|e| ConfigError::new(VAR, format!("cannot read {}: {e}", path.display())))?;
        let key = SigningKey::from_pem(&pem, Some(kid.to_owned()))
            .map_err(|m| ConfigError::new(VAR, format!("{}: {m}", path.display())))?;
        found.push(key);
    }
    let kids: Vec<&str> = found.iter().map(|k| k.kid()).collect();
    let active = match (&keys.jwt_key_id, found.len()) {
        (_, 0) => {
            return Err(ConfigError::new(
                VAR,
                format!("{} holds no <kid>.pem key", dir.display()),
            ));
        }
        (Some(kid), _) => kid.clone(),
        (None, 1) => kids[0].to_owned(),
        (None, _) => {
            return Err(ConfigError::new(
                "JWT_KEY_ID",
                format!("must name the signing key among {}", kids.join(", ")),
            ));
        }
    };
    let Some(index) = kids.iter().position(|k| *k == active) else {
        return Err(ConfigError::new(
            "JWT_KEY_ID",
            format!(
                "{active:?} is none of the keys in {}: {}",
                dir.display(),
                kids.join(", ")
            ),
        ));
    };
    let signing = found.remove(index);
    Ok((signing, found))
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
