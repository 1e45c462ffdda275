//! Sealing and opening secret values with AES-256-GCM.
//!
//! Each value gets a fresh random 96-bit nonce from the operating system. The
//! associated data binds the ciphertext to the key id and to the secret's identity
//! (kind, pipeline, key, and for a global secret its allow-list), each field length
//! prefixed, so a row copied to another identity, or an edited allow-list, fails to
//! open exactly like a wrong key does.

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, OsRng, Payload};
use aes_gcm::Nonce;
use zeroize::Zeroizing;

use crate::key::EncryptionKey;

/// Nonce length of AES-GCM in bytes.
pub(crate) const NONCE_LEN: usize = 12;

const AAD_VERSION: &[u8] = b"gofer-secrets/v1";

/// Which table a secret lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Pipeline,
    Global,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Pipeline => "pipeline",
            Kind::Global => "global",
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Kind::Pipeline => "pipeline secret",
            Kind::Global => "global secret",
        }
    }
}

/// Who a ciphertext belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Identity<'a> {
    pub(crate) kind: Kind,
    /// Empty for global secrets.
    pub(crate) pipeline: &'a str,
    pub(crate) key: &'a str,
    /// Empty for pipeline secrets.
    pub(crate) allow: &'a [String],
}

fn aad(key_id: &str, id: &Identity<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + id.pipeline.len() + id.key.len());
    let mut field = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    field(AAD_VERSION);
    field(key_id.as_bytes());
    field(id.kind.as_str().as_bytes());
    field(id.pipeline.as_bytes());
    field(id.key.as_bytes());
    field(&(id.allow.len() as u64).to_le_bytes());
    for pattern in id.allow {
        field(pattern.as_bytes());
    }
    out
}

/// Why sealing failed (never holds the value).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SealError {
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    #[error("AES-GCM refused to encrypt (value too long)")]
    Encrypt,
}

/// Encrypts `plaintext` for `id` under `key`; returns `(nonce, ciphertext)`.
pub(crate) fn seal(
    key: &EncryptionKey,
    id: &Identity<'_>,
    plaintext: &[u8],
) -> Result<([u8; NONCE_LEN], Vec<u8>), SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng
        .try_fill_bytes(&mut nonce)
        .map_err(|e| SealError::Random(e.to_string()))?;
    let aad = aad(key.id(), id);
    let ciphertext = key
        .cipher()
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| SealError::Encrypt)?;
    Ok((nonce, ciphertext))
}

/// Decrypts and authenticates; `None` for a wrong key, a tampered row or a row that
/// belongs to another identity.
pub(crate) fn open(
    key: &EncryptionKey,
    id: &Identity<'_>,
    nonce: &[u8],
    ciphertext: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    if nonce.len() != NONCE_LEN {
        return None;
    }
    let aad = aad(key.id(), id);
    key.cipher()
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id<'a>(pipeline: &'a str, key: &'a str) -> Identity<'a> {
        Identity {
            kind: Kind::Pipeline,
            pipeline,
            key,
            allow: &[],
        }
    }

    #[test]
    fn roundtrip_and_binding() {
        let k = EncryptionKey::generate().unwrap();
        let (nonce, ct) = seal(&k, &id("pipe", "k"), b"value").unwrap();
        assert_eq!(
            &open(&k, &id("pipe", "k"), &nonce, &ct).unwrap()[..],
            b"value"
        );
        assert!(open(&k, &id("pipe", "k2"), &nonce, &ct).is_none());
        assert!(open(&k, &id("pipe2", "k"), &nonce, &ct).is_none());
        // Field boundaries are unambiguous.
        assert!(open(&k, &id("pip", "ek"), &nonce, &ct).is_none());
        let global = Identity {
            kind: Kind::Global,
            ..id("pipe", "k")
        };
        assert!(open(&k, &global, &nonce, &ct).is_none());
        let other = EncryptionKey::generate().unwrap();
        assert!(open(&other, &id("pipe", "k"), &nonce, &ct).is_none());
        assert!(open(&k, &id("pipe", "k"), &nonce[..11], &ct).is_none());
    }

    #[test]
    fn allow_list_is_bound() {
        let k = EncryptionKey::generate().unwrap();
        let allow = vec!["a*".to_string()];
        let g = |allow| Identity {
            kind: Kind::Global,
            pipeline: "",
            key: "k",
            allow,
        };
        let (nonce, ct) = seal(&k, &g(&allow), b"v").unwrap();
        assert!(open(&k, &g(&allow), &nonce, &ct).is_some());
        assert!(open(&k, &g(&["*".to_string()]), &nonce, &ct).is_none());
    }

    #[test]
    fn nonces_are_fresh() {
        let k = EncryptionKey::generate().unwrap();
        let (n1, c1) = seal(&k, &id("pipe", "k"), b"same").unwrap();
        let (n2, c2) = seal(&k, &id("pipe", "k"), b"same").unwrap();
        assert_ne!(n1, n2);
        assert_ne!(c1, c2);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        #[test]
        fn any_flipped_byte_or_other_identity_fails(
            pipeline in "[a-z0-9_-]{3,20}",
            key in "[A-Za-z0-9_.]{1,30}",
            value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            flip in proptest::prelude::any::<usize>(),
            bit in 0u8..8,
        ) {
            let k = EncryptionKey::from_bytes(&[7; 32]).unwrap();
            let (nonce, ct) = seal(&k, &id(&pipeline, &key), &value).unwrap();
            proptest::prop_assert_eq!(&open(&k, &id(&pipeline, &key), &nonce, &ct).unwrap()[..], &value[..]);
            let mut bad_ct = ct.clone();
            let i = flip % bad_ct.len();
            bad_ct[i] ^= 1 << bit;
            proptest::prop_assert!(open(&k, &id(&pipeline, &key), &nonce, &bad_ct).is_none());
            let mut bad_nonce = nonce;
            bad_nonce[flip % NONCE_LEN] ^= 1 << bit;
            proptest::prop_assert!(open(&k, &id(&pipeline, &key), &bad_nonce, &ct).is_none());
            let other = format!("{}x", pipeline);
            proptest::prop_assert!(open(&k, &id(&other, &key), &nonce, &ct).is_none());
            let longer = format!("{}x", key);
            proptest::prop_assert!(open(&k, &id(&pipeline, &longer), &nonce, &ct).is_none());
        }
    }
}
