//! The one error type of this crate: a message for the person who wrote the query.

/// A query that cannot be parsed; `detail` says what is wrong and where, e.g.
/// `q: unexpected ')' at position 7`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct QueryError {
    pub detail: String,
}

impl QueryError {
    pub(crate) fn new(detail: impl Into<String>) -> Self {
        QueryError {
            detail: detail.into(),
        }
    }

    /// `"{lang}: {what} at position {n}"`, where `n` is the 1-based character position of
    /// byte offset `at` in `input`.
    pub(crate) fn at(lang: &str, input: &str, at: usize, what: impl std::fmt::Display) -> Self {
        let at = at.min(input.len());
        let pos = input.char_indices().take_while(|(i, _)| *i < at).count() + 1;
        QueryError::new(format!("{lang}: {what} at position {pos}"))
    }

    /// Rejects text longer than [`crate::MAX_INPUT_LEN`] before any parsing happens.
    pub(crate) fn check_len(lang: &str, input: &str) -> Result<(), QueryError> {
        if input.len() > crate::MAX_INPUT_LEN {
            return Err(QueryError::new(format!(
                "{lang}: expression is {} bytes long, at most {} are accepted",
                input.len(),
                crate::MAX_INPUT_LEN
            )));
        }
        Ok(())
    }
}
