//! Identifier rules shared by pipelines and tasks.

/// Shortest allowed identifier, in bytes.
pub const ID_MIN_LEN: usize = 3;
/// Longest allowed identifier, in bytes.
pub const ID_MAX_LEN: usize = 64;

/// Why an identifier is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Shorter than [`ID_MIN_LEN`] or longer than [`ID_MAX_LEN`].
    #[error("must be {ID_MIN_LEN} to {ID_MAX_LEN} characters long, got {len}")]
    Length {
        /// The length found.
        len: usize,
    },
    /// Holds a character outside `[A-Za-z0-9_-]`.
    #[error("must contain only A-Z, a-z, 0-9, '_' and '-', found {found:?}")]
    Character {
        /// The first offending character.
        found: char,
    },
}

/// Checks an identifier: 3–64 characters of `[A-Za-z0-9_-]`.
///
/// # Errors
/// Returns an [`IdError`] naming the rule that failed.
///
/// # Examples
/// ```
/// assert!(gofer_core::validate_id("simple_task").is_ok());
/// assert!(gofer_core::validate_id("no").is_err());
/// assert!(gofer_core::validate_id("has space").is_err());
/// ```
pub fn validate_id(id: &str) -> Result<(), IdError> {
    if let Some(found) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(IdError::Character { found });
    }
    let len = id.len();
    if !(ID_MIN_LEN..=ID_MAX_LEN).contains(&len) {
        return Err(IdError::Length { len });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_bounds_and_charset() {
        assert_eq!(validate_id("abc"), Ok(()));
        assert_eq!(validate_id(&"a".repeat(64)), Ok(()));
        assert_eq!(validate_id("A-z_09"), Ok(()));
    }

    #[test]
    fn rejects_length_and_characters() {
        assert_eq!(validate_id("ab"), Err(IdError::Length { len: 2 }));
        assert_eq!(
            validate_id(&"a".repeat(65)),
            Err(IdError::Length { len: 65 })
        );
        assert_eq!(validate_id(""), Err(IdError::Length { len: 0 }));
        assert_eq!(validate_id("a.bc"), Err(IdError::Character { found: '.' }));
        assert_eq!(validate_id("tâsk"), Err(IdError::Character { found: 'â' }));
    }
}
