//! Matrix tasks: one task fanned out over combinations of values.
//!
//! A task with a [`Matrix`] stands for one task per combination. The combinations are
//! the product of the axes' values, less every combination an `exclude` entry matches
//! (all its keys equal), then each `include` entry: merged into every combination it
//! matches on all the axes it names (its other keys added), or, when it matches none,
//! added as a combination of its own. [`Pipeline::expanded`](crate::Pipeline::expanded)
//! replaces the task with its combinations:
//!
//! - **ids**: the task's id, then `_<key>-<value>` for each of the combination's keys in
//!   key order, values with every character outside `[A-Za-z0-9-]` as `-`:
//!   `test` with `{os: linux, ver: "1.2"}` is `test_os-linux_ver-1-2`. Two
//!   combinations with one id, or an id past [`ID_MAX_LEN`](crate::ID_MAX_LEN), are
//!   validation errors naming the field `matrix`.
//! - **variables**: each key and value of the combination, beside the task's own
//!   (source: the pipeline configuration); a task variable of an axis' name is an error.
//! - **dependencies**: a task that depends on the matrix task depends on all its
//!   combinations: `Success` needs every one successful, `Failure` every one ended and at
//!   least one failed, `Any` every one ended.
//! - **fail_fast**: the first combination that fails cancels the others still running
//!   or waiting.
//!
//! At most [`MAX_COMBINATIONS`] combinations per task.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most combinations one matrix task expands to.
pub const MAX_COMBINATIONS: usize = 256;

/// A matrix of values a task is run over (see the module documentation).
///
/// In a pipeline file: `matrix: {os: [linux, bsd], ver: ["1", "2"], exclude: [...],
/// include: [...], fail_fast: true}` — every key other than `include`, `exclude` and
/// `fail_fast` is an axis.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Matrix {
    /// Axis name → its values.
    #[serde(flatten)]
    pub axes: BTreeMap<String, Vec<Scalar>>,
    /// Combinations to add, or keys to add to the combinations they match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<BTreeMap<String, Scalar>>,
    /// Combinations to leave out: every one whose keys match all of an entry's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<BTreeMap<String, Scalar>>,
    /// The first failed combination cancels the others.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_fast: bool,
}

/// A matrix value: text, or a number or boolean a file wrote without quotes (kept as
/// its text).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(from = "ScalarRepr", into = "String")]
pub struct Scalar(pub String);

#[derive(Deserialize)]
#[serde(untagged)]
enum ScalarRepr {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl From<ScalarRepr> for Scalar {
    fn from(r: ScalarRepr) -> Self {
        Self(match r {
            ScalarRepr::Text(s) => s,
            ScalarRepr::Int(i) => i.to_string(),
            ScalarRepr::Float(f) => f.to_string(),
            ScalarRepr::Bool(b) => b.to_string(),
        })
    }
}

impl From<Scalar> for String {
    fn from(s: Scalar) -> Self {
        s.0
    }
}

impl From<String> for Scalar {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Scalar {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

/// What a combination task keeps of the matrix it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MatrixCell {
    /// The matrix task's id (what dependents name).
    pub task: String,
    /// This combination's keys and values.
    pub values: BTreeMap<String, String>,
    /// The matrix's `fail_fast`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_fast: bool,
}

impl Matrix {
    /// A matrix with these axes.
    pub fn new<I, K, V>(axes: I) -> Self
    where
        I: IntoIterator<Item = (K, Vec<V>)>,
        K: Into<String>,
        V: Into<Scalar>,
    {
        Self {
            axes: axes
                .into_iter()
                .map(|(k, v)| (k.into(), v.into_iter().map(Into::into).collect()))
                .collect(),
            ..Self::default()
        }
    }

    /// Adds an `include` entry.
    #[must_use]
    pub fn include<I, K, V>(mut self, entry: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<Scalar>,
    {
        self.include.push(
            entry
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Adds an `exclude` entry.
    #[must_use]
    pub fn exclude<I, K, V>(mut self, entry: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<Scalar>,
    {
        self.exclude.push(
            entry
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Sets `fail_fast`.
    #[must_use]
    pub fn fail_fast(mut self, on: bool) -> Self {
        self.fail_fast = on;
        self
    }

    /// The combinations, in order (product order, then added includes), or what is
    /// wrong with the matrix. Stops counting past [`MAX_COMBINATIONS`].
    pub fn combinations(&self) -> Result<Vec<BTreeMap<String, String>>, String> {
        if self.axes.is_empty() && self.include.is_empty() {
            return Err("a matrix needs at least one axis or include entry".into());
        }
        for (axis, values) in &self.axes {
            if values.is_empty() {
                return Err(format!("axis {axis:?} has no values"));
            }
        }
        let mut total: usize = 1;
        for values in self.axes.values() {
            total = total.saturating_mul(values.len());
        }
        if total > MAX_COMBINATIONS.saturating_mul(4) {
            return Err(format!(
                "{total} combinations before exclusions; at most {MAX_COMBINATIONS} are allowed"
            ));
        }
        let mut combos: Vec<BTreeMap<String, String>> = vec![BTreeMap::new()];
        if !self.axes.is_empty() {
            for (axis, values) in &self.axes {
                let mut next = Vec::with_capacity(combos.len() * values.len());
                for c in &combos {
                    for v in values {
                        let mut c = c.clone();
                        c.insert(axis.clone(), v.0.clone());
                        next.push(c);
                    }
                }
                combos = next;
            }
        } else {
            combos.clear();
        }
        let matches = |c: &BTreeMap<String, String>, e: &BTreeMap<String, Scalar>| {
            e.iter().all(|(k, v)| c.get(k) == Some(&v.0))
        };
        combos.retain(|c| !self.exclude.iter().any(|e| matches(c, e)));
        for entry in &self.include {
            let on_axes: BTreeMap<String, Scalar> = entry
                .iter()
                .filter(|(k, _)| self.axes.contains_key(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut merged = false;
            if !on_axes.is_empty() {
                for c in combos.iter_mut().filter(|c| matches(c, &on_axes)) {
                    for (k, v) in entry {
                        c.insert(k.clone(), v.0.clone());
                    }
                    merged = true;
                }
            }
            if !merged {
                combos.push(
                    entry
                        .iter()
                        .map(|(k, v)| (k.clone(), v.0.clone()))
                        .collect(),
                );
            }
        }
        if combos.is_empty() {
            return Err("the exclusions leave no combination".into());
        }
        if combos.len() > MAX_COMBINATIONS {
            return Err(format!(
                "{} combinations; at most {MAX_COMBINATIONS} are allowed",
                combos.len()
            ));
        }
        Ok(combos)
    }
}

/// The id of a combination of task `task` (see the module documentation).
pub fn combination_id(task: &str, values: &BTreeMap<String, String>) -> String {
    let mut id = task.to_string();
    for (k, v) in values {
        id.push('_');
        id.push_str(k);
        id.push('-');
        id.extend(v.chars().map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        }));
    }
    id
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ids(m: &Matrix) -> Vec<String> {
        m.combinations()
            .unwrap()
            .iter()
            .map(|c| combination_id("test", c))
            .collect()
    }

    #[test]
    fn the_product_less_exclusions_plus_inclusions() {
        let m = Matrix::new([("os", vec!["linux", "bsd"]), ("ver", vec!["1", "2"])])
            .exclude([("os", "bsd"), ("ver", "1")])
            .include([("os", "linux"), ("extra", "yes")])
            .include([("os", "mac"), ("ver", "3")]);
        assert_eq!(
            ids(&m),
            [
                "test_extra-yes_os-linux_ver-1",
                "test_extra-yes_os-linux_ver-2",
                "test_os-bsd_ver-2",
                "test_os-mac_ver-3",
            ]
        );
    }

    #[test]
    fn values_become_id_safe_and_scalars_their_text() {
        let m: Matrix =
            serde_json::from_str(r#"{"ver": ["1.2", 3, true], "fail_fast": true}"#).unwrap();
        assert!(m.fail_fast);
        assert_eq!(ids(&m), ["test_ver-1-2", "test_ver-3", "test_ver-true"]);
    }

    #[test]
    fn bad_matrices_say_why() {
        assert!(Matrix::default()
            .combinations()
            .unwrap_err()
            .contains("at least one"));
        let empty = Matrix::new([("os", Vec::<&str>::new())]);
        assert!(empty
            .combinations()
            .unwrap_err()
            .contains("\"os\" has no values"));
        let all_out = Matrix::new([("os", vec!["a"])]).exclude([("os", "a")]);
        assert!(all_out
            .combinations()
            .unwrap_err()
            .contains("no combination"));
        let big: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        let huge = Matrix::new([("a", big.clone()), ("b", big.clone()), ("c", big)]);
        let e = huge.combinations().unwrap_err();
        assert!(e.contains("8000 combinations"), "{e}");
    }
}
