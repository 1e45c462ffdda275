//! [`RunTokens`]: the ready [`TokenIssuer`] the API checks tokens with.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use gofer_core::async_trait::async_trait;
use gofer_core::secrecy::{ExposeSecret, SecretBox, SecretString};
use gofer_core::{BoxError, TokenGrant, TokenIssuer};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Random bytes in a token: 256 bits.
pub const TOKEN_BYTES: usize = 32;

/// The prefix of every token [`RunTokens`] issues, so a leaked one is recognisable.
pub const TOKEN_PREFIX: &str = "gofer_";

type TokenDigest = [u8; 32];

fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// Issues one token per run and checks the tokens tasks present.
///
/// A token is [`TOKEN_PREFIX`] and 32 bytes (256 bits), base64url-encoded: from the
/// operating system's random source ([`RunTokens::new`]), or, with a key
/// ([`RunTokens::keyed`]), HMAC-SHA256 of the key over the pipeline and run, so the
/// same key gives a run the same token again after a host restart. Only the SHA-256
/// digest of each live token is kept (a token is as random as a key, so a plain
/// digest cannot be reversed); a presented token is hashed and its digest compared
/// with the stored one in constant time. [`TokenIssuer::revoke`], which the engine
/// calls when the run ends, forgets the digest, so the token stops working at once.
///
/// After a host restart: with a key, [`TokenIssuer::resume`] makes a resumed run's
/// token live again, so its containers' calls go on working and the engine masks the
/// token in the logs it reads again; tokens of runs that ended stay dead (nothing
/// resumes them). Without a key, tokens live in memory only: the containers of a
/// resumed run hold a token the new process does not know, and their calls get 401.
/// A keyed token is unique per (pipeline, run): give one key to one run store (run
/// numbers are never reused within one store), for example by deriving it with the
/// store's id (`SqliteRunStore::id` in `gofer-store-sqlite`), as `gofer` does, so a
/// store made again in the same place gets another key.
///
/// Nothing here logs or formats a token or the key: `Debug` shows only how many
/// tokens are live and whether there is a key.
#[derive(Default)]
pub struct RunTokens {
    /// Digest of a live token → the run it grants, and the grant → its digest.
    live: Mutex<Live>,
    /// The key of derived tokens, when there is one.
    key: Option<SecretBox<[u8; 32]>>,
}

#[derive(Default)]
struct Live {
    by_digest: HashMap<TokenDigest, TokenGrant>,
    by_run: HashMap<TokenGrant, TokenDigest>,
}

impl fmt::Debug for RunTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunTokens")
            .field("live", &self.lock().by_run.len())
            .field("keyed", &self.key.is_some())
            .finish()
    }
}

impl RunTokens {
    /// An issuer with no live token, issuing random tokens (lost with the process).
    pub fn new() -> Self {
        Self::default()
    }

    /// An issuer with no live token whose tokens derive from `key`: a resumed run
    /// gets its token again ([`TokenIssuer::resume`]). Keep the key as secret as the
    /// tokens (`gofer` derives it from its secret store's key).
    pub fn keyed(key: SecretBox<[u8; 32]>) -> Self {
        Self {
            live: Mutex::default(),
            key: Some(key),
        }
    }

    /// The token of (pipeline, run): derived with the key, else random.
    fn token_for(&self, grant: &TokenGrant) -> Result<String, BoxError> {
        let Some(key) = &self.key else {
            return new_token();
        };
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose_secret())
            .map_err(|e| -> BoxError { format!("the token key: {e}").into() })?;
        mac.update(b"gofer run token\0");
        mac.update(grant.pipeline.as_bytes());
        mac.update(b"\0");
        mac.update(&grant.run.to_be_bytes());
        Ok(format!(
            "{TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        ))
    }

    /// Makes `token` the live token of `grant` (replacing any other).
    fn make_live(&self, grant: TokenGrant, token: &str) {
        let d = digest(token);
        let mut live = self.lock();
        if let Some(old) = live.by_run.insert(grant.clone(), d) {
            live.by_digest.remove(&old);
        }
        live.by_digest.insert(d, grant);
    }

    fn lock(&self) -> MutexGuard<'_, Live> {
        // The maps are updated in one step each; a panic elsewhere leaves them whole.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many tokens are live (issued and not revoked).
    pub fn live(&self) -> usize {
        self.lock().by_run.len()
    }

    /// The run a presented token grants, if it is live.
    pub fn check(&self, token: &str) -> Option<TokenGrant> {
        let presented = digest(token);
        let live = self.lock();
        // The map finds a candidate by digest (a digest reveals nothing about the
        // token); the candidate is then confirmed in constant time.
        let (stored, grant) = live.by_digest.get_key_value(&presented)?;
        bool::from(stored.ct_eq(&presented)).then(|| grant.clone())
    }
}

/// A fresh token from the OS random source.
fn new_token() -> Result<String, BoxError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| -> BoxError { format!("the OS random source failed: {e}").into() })?;
    Ok(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

#[async_trait]
impl TokenIssuer for RunTokens {
    async fn issue(&self, pipeline: &str, run: u64) -> Result<SecretString, BoxError> {
        let grant = TokenGrant::new(pipeline, run);
        let token = self.token_for(&grant)?;
        // A second issue for the same run replaces the first token.
        self.make_live(grant, &token);
        Ok(SecretString::from(token))
    }

    async fn resume(&self, pipeline: &str, run: u64) -> Result<Option<SecretString>, BoxError> {
        if self.key.is_none() {
            return Ok(None);
        }
        let grant = TokenGrant::new(pipeline, run);
        let token = self.token_for(&grant)?;
        self.make_live(grant, &token);
        Ok(Some(SecretString::from(token)))
    }

    async fn revoke(&self, pipeline: &str, run: u64, token: SecretString) -> Result<(), BoxError> {
        let grant = TokenGrant::new(pipeline, run);
        let d = digest(token.expose_secret());
        let mut live = self.lock();
        if live.by_digest.get(&d) == Some(&grant) {
            live.by_digest.remove(&d);
            live.by_run.remove(&grant);
        } else if let Some(old) = live.by_run.remove(&grant) {
            // Whatever token the run holds stops working when the run ends.
            live.by_digest.remove(&old);
        }
        Ok(())
    }

    async fn verify(&self, token: &str) -> Option<TokenGrant> {
        self.check(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn issue_check_revoke() {
        let tokens = RunTokens::new();
        let a = tokens.issue("p", 1).await.expect("issue");
        let b = tokens.issue("p", 2).await.expect("issue");
        assert_ne!(a.expose_secret(), b.expose_secret());
        let raw = a
            .expose_secret()
            .strip_prefix(TOKEN_PREFIX)
            .expect("prefix");
        assert_eq!(
            URL_SAFE_NO_PAD.decode(raw).expect("base64url").len(),
            TOKEN_BYTES
        );
        assert_eq!(
            tokens.check(a.expose_secret()),
            Some(TokenGrant::new("p", 1))
        );
        assert_eq!(
            tokens.check(b.expose_secret()),
            Some(TokenGrant::new("p", 2))
        );
        // One character off is no token.
        let mut wrong = a.expose_secret().to_string();
        let last = wrong.pop().expect("char");
        wrong.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(tokens.check(&wrong), None);
        assert_eq!(tokens.check(""), None);
        tokens.revoke("p", 1, a.clone()).await.expect("revoke");
        assert_eq!(tokens.check(a.expose_secret()), None);
        assert_eq!(tokens.live(), 1);
        assert!(!format!("{tokens:?}").contains(b.expose_secret()));
    }

    #[tokio::test]
    async fn a_second_issue_replaces_the_first_and_revoke_ends_either() {
        let tokens = RunTokens::new();
        let a = tokens.issue("p", 1).await.expect("issue");
        let b = tokens.issue("p", 1).await.expect("issue");
        assert_eq!(tokens.check(a.expose_secret()), None);
        assert!(tokens.check(b.expose_secret()).is_some());
        tokens.revoke("p", 1, a).await.expect("revoke");
        assert_eq!(tokens.check(b.expose_secret()), None);
        assert_eq!(tokens.live(), 0);
    }

    fn key(byte: u8) -> SecretBox<[u8; 32]> {
        SecretBox::new(Box::new([byte; 32]))
    }

    /// A keyed issuer gives a resumed run the token it had before the restart, live
    /// again; other runs and other keys get other tokens; a run that ended is not
    /// live in a new process until something resumes it; an unkeyed one cannot resume.
    #[tokio::test]
    async fn a_keyed_issuer_resumes_a_runs_token_after_a_restart() {
        let before = RunTokens::keyed(key(7));
        let a = before.issue("p", 1).await.expect("issue");
        let raw = a
            .expose_secret()
            .strip_prefix(TOKEN_PREFIX)
            .expect("prefix");
        assert_eq!(
            URL_SAFE_NO_PAD.decode(raw).expect("base64url").len(),
            TOKEN_BYTES
        );
        let other_run = before.issue("p", 2).await.expect("issue");
        let other_pipeline = before.issue("q", 1).await.expect("issue");
        assert_ne!(a.expose_secret(), other_run.expose_secret());
        assert_ne!(a.expose_secret(), other_pipeline.expose_secret());

        // A new process with the same key.
        let after = RunTokens::keyed(key(7));
        assert_eq!(
            after.check(a.expose_secret()),
            None,
            "not live until resumed"
        );
        let resumed = after
            .resume("p", 1)
            .await
            .expect("resume")
            .expect("a token");
        assert_eq!(resumed.expose_secret(), a.expose_secret());
        assert_eq!(
            after.check(a.expose_secret()),
            Some(TokenGrant::new("p", 1))
        );
        assert_eq!(after.check(other_run.expose_secret()), None);
        after.revoke("p", 1, resumed).await.expect("revoke");
        assert_eq!(after.check(a.expose_secret()), None);

        let other_key = RunTokens::keyed(key(8));
        let c = other_key.issue("p", 1).await.expect("issue");
        assert_ne!(c.expose_secret(), a.expose_secret());
        assert!(RunTokens::new()
            .resume("p", 1)
            .await
            .expect("resume")
            .is_none());
        assert!(!format!("{after:?}").contains(a.expose_secret()));
    }
}
