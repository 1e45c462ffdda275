//! [`RunSecrets`]: every secret value a run has seen (substituted secrets, its API
//! token, registry passwords), which its log masker and its error messages are masked
//! with. It only ever learns more.

use std::sync::{Mutex, MutexGuard};

use secrecy::SecretString;

use crate::logs::mask::{mask_str, MaskPatterns};

/// The secret values of one run.
#[derive(Default)]
pub(crate) struct RunSecrets(Mutex<Vec<SecretString>>);

impl RunSecrets {
    fn lock(&self) -> MutexGuard<'_, Vec<SecretString>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Learns more values.
    pub(crate) fn add(&self, values: impl IntoIterator<Item = SecretString>) {
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
