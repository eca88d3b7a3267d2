//! Why a spec is rejected ([`SpecErrors`]) and why a validated spec cannot answer a
//! request about a case or provider ([`EvalError`]).

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::template::TemplateError;

/// One problem in a spec, located by a JSON pointer (RFC 6901) into the request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Error)]
#[error("{pointer}: {message}")]
pub struct SpecError {
    /// Where the problem is, e.g. `/scorers/2/pattern`; empty for the whole body.
    pub pointer: String,
    /// What is wrong there (lowercase, no trailing period).
    pub message: String,
}

impl SpecError {
    /// An error at `pointer`.
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> SpecError {
        SpecError {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

/// Every problem found in a spec, in body order; never empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Error)]
pub struct SpecErrors {
    /// The problems, at least one.
    pub errors: Vec<SpecError>,
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.as_slice() {
            [] => f.write_str("invalid spec"),
            [one] => write!(f, "{one}"),
            [first, rest @ ..] => write!(f, "{first} (and {} more)", rest.len()),
        }
    }
}

impl SpecErrors {
    /// A single problem.
    pub fn one(error: SpecError) -> SpecErrors {
        SpecErrors {
            errors: vec![error],
        }
    }

    /// The first problem (what a one-line message shows).
    pub fn first(&self) -> Option<&SpecError> {
        self.errors.first()
    }
}

/// A request a validated spec cannot answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EvalError {
    /// The case index is past the spec's cases.
    #[error("case {0} is not in the spec")]
    UnknownCase(usize),
    /// No provider has this id.
    #[error("provider {0:?} is not in the spec")]
    UnknownProvider(String),
    /// The repeat index is not below the spec's `repeat`.
    #[error("repeat {0} is out of range")]
    UnknownRepeat(u32),
    /// The provider is not a builtin one.
    #[error("provider {0:?} is not builtin")]
    NotBuiltin(String),
    /// A template could not be rendered.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// Appends one reference token to a JSON pointer, escaping `~` and `/`.
pub(crate) fn push_token(pointer: &str, token: &str) -> String {
    format!("{pointer}/{}", token.replace('~', "~0").replace('/', "~1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_counts_the_rest() {
        let e = |p: &str| SpecError::new(p, "bad");
        let errs = |v: Vec<SpecError>| SpecErrors { errors: v }.to_string();
        assert_eq!(errs(vec![]), "invalid spec");
        assert_eq!(errs(vec![e("/a")]), "/a: bad");
        assert_eq!(errs(vec![e("/a"), e("/b")]), "/a: bad (and 1 more)");
        assert_eq!(
            push_token("/cases/0/outputs", "a/b~c"),
            "/cases/0/outputs/a~1b~0c"
        );
    }
}
