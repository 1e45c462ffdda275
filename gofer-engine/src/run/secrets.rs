//! [`RunSecrets`]: every secret value a run has seen (substituted secrets, its API
//! token, registry passwords), which its log masker and its error messages are masked
//! with. It only ever learns more.

use std::sync::{Mutex, MutexGuard};

use secrecy::SecretString;

use crate::logs::mask::{mask_str, MaskPatterns};
use crate::logs::redact::Registration;

/// The secret values of one run; with the engine's [`SecretRegistry`], registered
/// there too while the run lives (and for the registry's grace after).
///
/// [`SecretRegistry`]: crate::SecretRegistry
pub(crate) struct RunSecrets {
    values: Mutex<Vec<SecretString>>,
    registration: Option<Registration>,
}

impl RunSecrets {
    pub(crate) fn new(registration: Option<Registration>) -> Self {
        Self {
            values: Mutex::new(Vec::new()),
            registration,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<SecretString>> {
        self.values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Learns more values.
    pub(crate) fn add(&self, values: impl IntoIterator<Item = SecretString>) {
        let values: Vec<SecretString> = values.into_iter().collect();
        if let Some(r) = &self.registration {
            r.add(values.iter().cloned());
        }
        self.lock().extend(values);
    }

    /// How many values the run knows (a pump compares it to know when to rebuild its
    /// patterns).
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// The masker's patterns for every value known now.
    pub(crate) fn patterns(&self) -> MaskPatterns {
        MaskPatterns::new(self.lock().iter())
    }

    /// `text` with every value known now masked.
    pub(crate) fn mask(&self, text: &str) -> String {
        let secrets = self.lock();
        if secrets.is_empty() {
            return text.to_string();
        }
        mask_str(&MaskPatterns::new(secrets.iter()), text)
    }
}
