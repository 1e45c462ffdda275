//! The 32-byte encryption key of a [`SqliteSecretStore`](crate::SqliteSecretStore).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use aes_gcm::aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::Aes256Gcm;
use base64::Engine;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use zeroize::Zeroizing;

/// Length of an [`EncryptionKey`] in bytes (AES-256).
pub const KEY_LEN: usize = 32;

/// Why an [`EncryptionKey`] could not be made. Never holds key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key does not have [`KEY_LEN`] bytes.
    #[error("encryption key must be {KEY_LEN} bytes, got {found} bytes (decoded from {encoding})")]
    Length {
        /// How many bytes were given.
        found: usize,
        /// How the bytes were given: `"raw bytes"`, `"hex"` or `"base64"`.
        encoding: &'static str,
    },
    /// The key text is neither hex nor base64.
    #[error("encryption key text must be 64 hex digits or the base64 of 32 bytes: {reason}")]
    Encoding {
        /// What is wrong (never quotes the text).
        reason: String,
    },
    /// The environment variable that should hold the key is not set or not UTF-8.
    #[error("encryption key variable {var} is not set or not UTF-8")]
    MissingVar {
        /// The variable name.
        var: String,
    },
    /// The key in an environment variable is malformed.
    #[error("encryption key variable {var}: {source}")]
    InVar {
        /// The variable name.
        var: String,
        /// What is wrong with its value.
        #[source]
        source: Box<KeyError>,
    },
    /// The key file could not be read or written.
    #[error("encryption key file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The key file's content is malformed.
    #[error("encryption key file {}: {source}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with its content.
        #[source]
        source: Box<KeyError>,
    },
    /// The operating system's random number generator failed.
    #[error("cannot get random bytes from the operating system: {message}")]
    Random {
        /// What the generator said.
        message: String,
    },
}

/// The AES-256-GCM key that encrypts a [`SqliteSecretStore`](crate::SqliteSecretStore).
///
/// The bytes live in a [`SecretBox`] (zeroed on drop) and never appear in `Debug`
/// output or errors. Each key has an [`id`](EncryptionKey::id): a public fingerprint
/// derived from the key (`AES-256(key, "gofer-key-id")`, first 8 bytes in hex), so the
/// host never has to store an id beside the key: the store records the id it was
/// written under and refuses a different key with [`StoreError::Integrity`](gofer_core::StoreError::Integrity).
///
/// # Examples
/// ```
/// use gofer_secrets::EncryptionKey;
/// let key: EncryptionKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
///     .parse()
///     .expect("64 hex digits");
/// assert_eq!(key.id().len(), 16);
/// assert!(!format!("{key:?}").contains("0001"));
/// assert!("too short".parse::<EncryptionKey>().is_err());
/// ```
pub struct EncryptionKey {
    bytes: SecretBox<[u8; KEY_LEN]>,
    id: String,
}

impl EncryptionKey {
    /// A fresh random key from the operating system's generator.
    ///
    /// # Errors
    /// [`KeyError::Random`] when the generator fails.
    pub fn generate() -> Result<Self, KeyError> {
        let mut failure = None;
        let bytes = SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| {
            if let Err(e) = OsRng.try_fill_bytes(k) {
                failure = Some(e.to_string());
            }
        });
        match failure {
            Some(message) => Err(KeyError::Random { message }),
            None => Ok(Self::from_secret(bytes)),
        }
    }

    /// A key from exactly [`KEY_LEN`] raw bytes.
    ///
    /// # Errors
    /// [`KeyError::Length`] when `bytes` is not 32 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != KEY_LEN {
            return Err(KeyError::Length {
                found: bytes.len(),
                encoding: "raw bytes",
            });
        }
        Ok(Self::from_secret(SecretBox::init_with_mut(
            |k: &mut [u8; KEY_LEN]| k.copy_from_slice(bytes),
        )))
    }

    /// A key from text: 64 hex digits, or base64 (standard or URL-safe alphabet, with
    /// or without padding) of 32 bytes. Surrounding whitespace, such as the trailing
    /// newline of a key file, is ignored.
    ///
    /// # Errors
    /// [`KeyError::Encoding`] when the text is neither, [`KeyError::Length`] when it
    /// decodes to other than 32 bytes.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyError::Encoding {
                reason: "the text is empty".into(),
            });
        }
        if text.len() % 2 == 0 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            let bytes = decode_hex(text);
            if bytes.len() == KEY_LEN {
                return Self::from_bytes(&bytes);
            }
            // Hex digits of the wrong length may still be base64 (it shares the
            // alphabet); prefer the base64 reading only if it yields a valid key.
            if let Some(b) = decode_base64(text).filter(|b| b.len() == KEY_LEN) {
                return Self::from_bytes(&b);
            }
            return Err(KeyError::Length {
                found: bytes.len(),
                encoding: "hex",
            });
        }
        match decode_base64(text) {
            Some(bytes) if bytes.len() == KEY_LEN => Self::from_bytes(&bytes),
            Some(bytes) => Err(KeyError::Length {
                found: bytes.len(),
                encoding: "base64",
            }),
            None => Err(KeyError::Encoding {
                reason: format!(
                    "{} characters that are neither hex digits nor valid base64",
                    text.chars().count()
                ),
            }),
        }
    }

    /// A key from the environment variable `var` (parsed as by [`EncryptionKey::parse`]).
    ///
    /// # Errors
    /// [`KeyError::MissingVar`] when unset, [`KeyError::InVar`] when malformed.
    pub fn from_env(var: &str) -> Result<Self, KeyError> {
        let text = Zeroizing::new(std::env::var(var).map_err(|_| KeyError::MissingVar {
            var: var.to_string(),
        })?);
        Self::parse(&text).map_err(|e| KeyError::InVar {
            var: var.to_string(),
            source: Box::new(e),
        })
    }

    /// Reads a key file holding hex or base64 text (as written by
    /// [`EncryptionKey::load_or_create_file`]). Warns through `tracing` when the file
    /// is readable by group or others.
    ///
    /// # Errors
    /// [`KeyError::Io`] when unreadable, [`KeyError::InFile`] when malformed.
    pub fn read_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| KeyError::Io {
                    path: path.to_path_buf(),
                    source,
                })?,
            );
        warn_if_shared(path);
        Self::parse(&text).map_err(|e| KeyError::InFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// Reads the key file at `path`, or, when it does not exist, generates a key and
    /// writes it there as base64 with mode `0600`. This is the simplest way for a host
    /// to keep its key: generated once, then read at every start.
    ///
    /// The new file appears atomically with its whole content (written beside it,
    /// then hard-linked into place), so a crash never leaves an empty key file and two
    /// hosts starting at once end up with the same key.
    ///
    /// # Errors
    /// As [`EncryptionKey::read_file`] and [`EncryptionKey::generate`], and
    /// [`KeyError::Io`] when the file cannot be created.
    pub fn load_or_create_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        match Self::read_file(path) {
            Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            other => return other,
        }
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let key = Self::generate()?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.{}.tmp", key.id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&tmp).and_then(|mut file| {
            let text = key.to_base64();
            file.write_all(text.expose_secret().as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()
        });
        let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                tracing::info!(path = %path.display(), key_id = %key.id(), "generated a new encryption key");
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::read_file(path),
            Err(e) => Err(io(e)),
        }
    }

    /// A key for another use, derived from this one: HMAC-SHA256 of this key over
    /// `"gofer key derivation\0"` and `purpose` (the single-block expand step of
    /// HKDF). Keys derived for different purposes are unrelated, and none reveals this
    /// key, so one key the host keeps serves several uses (`gofer` derives the key of
    /// its run tokens from its secret store's key).
    ///
    /// ```
    /// use gofer_secrets::EncryptionKey;
    /// use gofer_core::secrecy::ExposeSecret;
    /// let key = EncryptionKey::generate().unwrap();
    /// let a = key.derive("run tokens");
    /// assert_eq!(a.expose_secret(), key.derive("run tokens").expose_secret());
    /// assert_ne!(a.expose_secret(), key.derive("other").expose_secret());
    /// ```
    pub fn derive(&self, purpose: &str) -> SecretBox<[u8; KEY_LEN]> {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.bytes.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(b"gofer key derivation\0");
        mac.update(purpose.as_bytes());
        mac.update(&[1]);
        let out = mac.finalize().into_bytes();
        SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| k.copy_from_slice(&out))
    }

    /// The key's public fingerprint (16 hex digits); safe to log and store.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key as standard padded base64, for the host to keep it somewhere safe.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(
            base64::engine::general_purpose::STANDARD.encode(self.bytes.expose_secret()),
        )
    }

    pub(crate) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(GenericArray::from_slice(self.bytes.expose_secret()))
    }

    fn from_secret(bytes: SecretBox<[u8; KEY_LEN]>) -> Self {
        let aes = Aes256::new(GenericArray::from_slice(bytes.expose_secret()));
        let mut block = GenericArray::clone_from_slice(b"gofer-key-id\0\0\0\0");
        aes.encrypt_block(&mut block);
        let id = block[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self { bytes, id }
    }
}

impl Clone for EncryptionKey {
    fn clone(&self) -> Self {
        Self {
            bytes: SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| {
                k.copy_from_slice(self.bytes.expose_secret())
            }),
            id: self.id.clone(),
        }
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl FromStr for EncryptionKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn decode_hex(text: &str) -> Zeroizing<Vec<u8>> {
    let nibble = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c.to_ascii_lowercase().wrapping_sub(b'a').wrapping_add(10),
    };
    Zeroizing::new(
        text.as_bytes()
            .chunks_exact(2)
            .map(|p| (nibble(p[0]) << 4) | nibble(p[1]))
            .collect(),
    )
}

fn decode_base64(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .map(Zeroizing::new)
}

fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "encryption key file is readable by group or others; chmod 600 it");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn hex_and_base64_give_the_same_key() {
        let a = EncryptionKey::parse(HEX).unwrap();
        let b64 = a.to_base64();
        let b = EncryptionKey::parse(b64.expose_secret()).unwrap();
        assert_eq!(a.id(), b.id());
        let upper = EncryptionKey::parse(&format!("  {}\n", HEX.to_uppercase())).unwrap();
        assert_eq!(a.id(), upper.id());
        let unpadded = b64.expose_secret().trim_end_matches('=').replace('+', "-");
        assert_eq!(EncryptionKey::parse(&unpadded).unwrap().id(), a.id());
        assert_eq!(
            EncryptionKey::from_bytes(&(0..32).collect::<Vec<u8>>())
                .unwrap()
                .id(),
            a.id()
        );
    }

    #[test]
    fn distinct_keys_have_distinct_ids() {
        let a = EncryptionKey::generate().unwrap();
        let b = EncryptionKey::generate().unwrap();
        assert_ne!(a.id(), b.id());
        assert_eq!(a.clone().id(), a.id());
    }

    #[test]
    fn errors_name_the_problem_without_the_text() {
        let e = EncryptionKey::parse(&HEX[..62]).unwrap_err();
        assert!(
            matches!(
                e,
                KeyError::Length {
                    found: 31,
                    encoding: "hex"
                }
            ),
            "{e}"
        );
        let e = EncryptionKey::parse("").unwrap_err();
        assert!(matches!(e, KeyError::Encoding { .. }), "{e}");
        let e = EncryptionKey::parse("not a key! secretish").unwrap_err();
        assert!(matches!(e, KeyError::Encoding { .. }), "{e}");
        assert!(!e.to_string().contains("secretish"));
        let e = EncryptionKey::parse("c2hvcnQ=").unwrap_err();
        assert!(
            matches!(
                e,
                KeyError::Length {
                    found: 5,
                    encoding: "base64"
                }
            ),
            "{e}"
        );
        let e = EncryptionKey::from_bytes(&[1; 16]).unwrap_err();
        assert!(matches!(e, KeyError::Length { found: 16, .. }), "{e}");
        let e = EncryptionKey::from_env("GOFER_TEST_SURELY_UNSET_KEY_VAR").unwrap_err();
        assert!(e.to_string().contains("GOFER_TEST_SURELY_UNSET_KEY_VAR"));
    }

    #[test]
    fn debug_hides_the_bytes() {
        let k = EncryptionKey::parse(HEX).unwrap();
        let d = format!("{k:?}");
        assert!(d.contains(k.id()));
        assert!(!d.contains("0001") && !d.contains("AAEC"), "{d}");
    }

    #[test]
    fn key_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gofer.key");
        let a = EncryptionKey::load_or_create_file(&path).unwrap();
        let b = EncryptionKey::load_or_create_file(&path).unwrap();
        assert_eq!(a.id(), b.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // Racing creators agree on one key.
        let raced = dir.path().join("raced.key");
        let ids: Vec<String> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    sc.spawn(|| {
                        EncryptionKey::load_or_create_file(&raced)
                            .unwrap()
                            .id()
                            .to_string()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.iter().all(|i| i == &ids[0]), "{ids:?}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 2, "no temporary files left: {leftovers:?}");
        std::fs::write(&path, "garbage!").unwrap();
        let e = EncryptionKey::read_file(&path).unwrap_err();
        assert!(matches!(e, KeyError::InFile { .. }), "{e}");
        assert!(e.to_string().contains("gofer.key"));
    }
}
