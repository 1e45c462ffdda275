//! Parsing of store placeholders in variable values.
//!
//! A value that is **exactly one** placeholder refers to a store and is replaced just
//! before the task's container starts:
//!
//! | placeholder | store |
//! |---|---|
//! | `pipeline_secret{{key}}` or `secret{{key}}` | the pipeline's secrets |
//! | `global_secret{{key}}` | global secrets (the pipeline must be on the allow-list) |
//! | `pipeline_object{{key}}` | the pipeline's objects |
//! | `run_object{{key}}` | the run's objects |
//!
//! Rules, decided here:
//! - The prefix is case-insensitive; spaces and tabs inside the braces are trimmed.
//! - The value must be the placeholder alone: no text before or after, no surrounding
//!   whitespace. A value that *contains* a known `prefix{{` but is not exactly one
//!   placeholder is an error ([`PlaceholderError::NotWholeValue`]), so that a literal
//!   `secret{{x}}` can never reach a container by accident.
//! - Braces without a known prefix (`{{ .Name }}`, `a{{b}}`) are plain text.
//! - An empty key ([`PlaceholderError::EmptyKey`]), a key holding braces or inner
//!   whitespace ([`PlaceholderError::InvalidKey`]) and unbalanced braces after a known
//!   prefix ([`PlaceholderError::Unbalanced`]) are errors. Parsing never panics.

use serde::{Deserialize, Serialize};

/// The store a placeholder refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaceholderKind {
    /// `pipeline_secret{{..}}` / `secret{{..}}`.
    PipelineSecret,
    /// `global_secret{{..}}`.
    GlobalSecret,
    /// `pipeline_object{{..}}`.
    PipelineObject,
    /// `run_object{{..}}`.
    RunObject,
}

impl PlaceholderKind {
    /// Whether the value comes from a secret store (and must be masked).
    pub fn is_secret(self) -> bool {
        matches!(self, Self::PipelineSecret | Self::GlobalSecret)
    }

    /// The canonical prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::PipelineSecret => "pipeline_secret",
            Self::GlobalSecret => "global_secret",
            Self::PipelineObject => "pipeline_object",
            Self::RunObject => "run_object",
        }
    }
}

/// A parsed placeholder: which store, which key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Placeholder {
    /// The store.
    pub kind: PlaceholderKind,
    /// The key, trimmed.
    pub key: String,
}

/// A malformed placeholder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlaceholderError {
    /// `prefix{{}}` or `prefix{{  }}`.
    #[error("placeholder `{prefix}{{{{}}}}` has an empty key")]
    EmptyKey {
        /// The prefix as written.
        prefix: String,
    },
    /// A key holding braces or whitespace.
    #[error("placeholder `{prefix}{{{{..}}}}` has an invalid key {key:?} (no braces or inner whitespace)")]
    InvalidKey {
        /// The prefix as written.
        prefix: String,
        /// The key.
        key: String,
    },
    /// `prefix{{key` with no closing `}}`.
    #[error("placeholder `{prefix}{{{{` is not closed with `}}}}`")]
    Unbalanced {
        /// The prefix as written.
        prefix: String,
    },
    /// A placeholder with other text around it.
    #[error("placeholder `{prefix}{{{{..}}}}` must be the whole value, without text around it")]
    NotWholeValue {
        /// The prefix as written.
        prefix: String,
    },
}

const PREFIXES: [(&str, PlaceholderKind); 5] = [
    ("pipeline_secret", PlaceholderKind::PipelineSecret),
    ("global_secret", PlaceholderKind::GlobalSecret),
    ("pipeline_object", PlaceholderKind::PipelineObject),
    ("run_object", PlaceholderKind::RunObject),
    ("secret", PlaceholderKind::PipelineSecret),
];

/// Finds the first known `prefix{{` in `value`: (byte offset, prefix as written, kind).
fn find_prefix(value: &str) -> Option<(usize, &str, PlaceholderKind)> {
    let lower = value.to_ascii_lowercase();
    let mut best: Option<(usize, usize, PlaceholderKind)> = None;
    for (p, kind) in PREFIXES {
        let pat = format!("{p}{{{{");
        if let Some(at) = lower.find(&pat) {
            // `secret{{` inside `pipeline_secret{{` belongs to the longer prefix.
            let better = match best {
                None => true,
                Some((b, blen, _)) => at < b || (at == b && p.len() > blen),
            };
            if better {
                best = Some((at, p.len(), kind));
            }
        }
    }
    // ASCII lowering keeps byte offsets, so slicing the original is safe.
    best.map(|(at, len, kind)| (at, &value[at..at + len], kind))
}

/// Parses a variable value.
///
/// Returns `Ok(None)` for a plain value, `Ok(Some(..))` for a placeholder.
///
/// # Errors
/// A [`PlaceholderError`] when the value holds a known prefix followed by `{{` but is
/// not exactly one well-formed placeholder.
///
/// # Examples
/// ```
/// use gofer_core::{parse_placeholder, PlaceholderKind};
/// let p = parse_placeholder("Secret{{ db_password }}").unwrap().unwrap();
/// assert_eq!(p.kind, PlaceholderKind::PipelineSecret);
/// assert_eq!(p.key, "db_password");
/// assert_eq!(parse_placeholder("plain {{ .Go }} text").unwrap(), None);
/// assert!(parse_placeholder("x secret{{a}}").is_err());
/// ```
pub fn parse_placeholder(value: &str) -> Result<Option<Placeholder>, PlaceholderError> {
    let Some((at, prefix, kind)) = find_prefix(value) else {
        return Ok(None);
    };
    let prefix_owned = prefix.to_string();
    if at != 0 {
        return Err(PlaceholderError::NotWholeValue {
            prefix: prefix_owned,
        });
    }
    let rest = &value[prefix.len() + 2..];
    let Some(close) = rest.find("}}") else {
        return Err(PlaceholderError::Unbalanced {
            prefix: prefix_owned,
        });
    };
    let raw_key = &rest[..close];
    let after = &rest[close + 2..];
    if !after.is_empty() {
        return Err(if after.starts_with('}') {
            PlaceholderError::Unbalanced {
                prefix: prefix_owned,
            }
        } else {
            PlaceholderError::NotWholeValue {
                prefix: prefix_owned,
            }
        });
    }
    let key = raw_key.trim_matches(|c| c == ' ' || c == '\t');
    if key.is_empty() {
        return Err(PlaceholderError::EmptyKey {
            prefix: prefix_owned,
        });
    }
    if key.contains(['{', '}']) || key.chars().any(char::is_whitespace) {
        return Err(PlaceholderError::InvalidKey {
            prefix: prefix_owned,
            key: key.to_string(),
        });
    }
    Ok(Some(Placeholder {
        kind,
        key: key.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use PlaceholderKind::*;

    fn ok(v: &str) -> Option<Placeholder> {
        parse_placeholder(v).expect("parses")
    }

    #[test]
    fn recognises_each_kind_and_alias() {
        for (v, kind) in [
            ("pipeline_secret{{k}}", PipelineSecret),
            ("secret{{k}}", PipelineSecret),
            ("global_secret{{k}}", GlobalSecret),
            ("pipeline_object{{k}}", PipelineObject),
            ("run_object{{k}}", RunObject),
            ("RUN_Object{{ k }}", RunObject),
            ("SECRET{{\tk\t}}", PipelineSecret),
        ] {
            assert_eq!(
                ok(v),
                Some(Placeholder {
                    kind,
                    key: "k".into()
                }),
                "{v}"
            );
        }
    }

    #[test]
    fn plain_values_stay_plain() {
        for v in [
            "",
            "hello",
            "{{ .Name }}",
            "a{{b}}",
            "secret",
            "secret{x}",
            "mysecret{ {x}}",
            "secret{{"[..7].as_ref(),
        ] {
            assert_eq!(ok(v), None, "{v}");
        }
    }

    #[test]
    fn malformed_placeholders_are_errors() {
        assert_eq!(
            parse_placeholder("secret{{}}"),
            Err(PlaceholderError::EmptyKey {
                prefix: "secret".into()
            })
        );
        assert_eq!(
            parse_placeholder("secret{{   }}"),
            Err(PlaceholderError::EmptyKey {
                prefix: "secret".into()
            })
        );
        assert_eq!(
            parse_placeholder("secret{{abc"),
            Err(PlaceholderError::Unbalanced {
                prefix: "secret".into()
            })
        );
        assert_eq!(
            parse_placeholder("secret{{abc}}}"),
            Err(PlaceholderError::Unbalanced {
                prefix: "secret".into()
            })
        );
        assert_eq!(
            parse_placeholder("secret{{a b}}"),
            Err(PlaceholderError::InvalidKey {
                prefix: "secret".into(),
                key: "a b".into()
            })
        );
        assert_eq!(
            parse_placeholder("secret{{a{b}}"),
            Err(PlaceholderError::InvalidKey {
                prefix: "secret".into(),
                key: "a{b".into()
            })
        );
        assert_eq!(
            parse_placeholder("x secret{{a}}"),
            Err(PlaceholderError::NotWholeValue {
                prefix: "secret".into()
            })
        );
        assert_eq!(
            parse_placeholder("secret{{a}} x"),
            Err(PlaceholderError::NotWholeValue {
                prefix: "secret".into()
            })
        );
        assert_eq!(
            parse_placeholder(" secret{{a}}"),
            Err(PlaceholderError::NotWholeValue {
                prefix: "secret".into()
            })
        );
        assert_eq!(
            parse_placeholder("Global_Secret{{a}}{{b}}"),
            Err(PlaceholderError::NotWholeValue {
                prefix: "Global_Secret".into()
            })
        );
    }

    #[test]
    fn longest_prefix_wins() {
        assert_eq!(
            ok("pipeline_secret{{x}}").map(|p| p.kind),
            Some(PipelineSecret)
        );
        assert_eq!(ok("global_secret{{x}}").map(|p| p.kind), Some(GlobalSecret));
    }

    fn kind() -> impl Strategy<Value = (&'static str, PlaceholderKind)> {
        prop::sample::select(PREFIXES.to_vec())
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_placeholder(&s);
        }

        #[test]
        fn never_panics_near_placeholders(pre in "[a-z_{} ]{0,6}", (p, _k) in kind(), mid in "[a-zA-Z0-9_{} é\t]{0,8}", post in "[{} a]{0,4}") {
            let _ = parse_placeholder(&format!("{pre}{p}{{{{{mid}{post}"));
        }

        #[test]
        fn recognises_generated_placeholders(
            (p, k) in kind(),
            upper in proptest::collection::vec(any::<bool>(), 20),
            key in "[A-Za-z0-9_./-]{1,20}",
            lpad in "[ \t]{0,3}",
            rpad in "[ \t]{0,3}",
        ) {
            let prefix: String = p.chars().zip(upper.iter().cycle()).map(|(c, u)| if *u { c.to_ascii_uppercase() } else { c }).collect();
            let v = format!("{prefix}{{{{{lpad}{key}{rpad}}}}}");
            prop_assert_eq!(parse_placeholder(&v), Ok(Some(Placeholder { kind: k, key: key.clone() })));
        }
    }
}
