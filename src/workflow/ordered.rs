//! A YAML mapping of names to values kept in file order, with duplicate names rejected
//! (pipeline `jobs:`, schedule `schedules:`).

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

#[derive(Debug)]
pub struct Ordered<T>(pub Vec<(String, Spanned<T>)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of names to entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered<T>, A::Error> {
                let mut out: Vec<(String, Spanned<T>)> = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    if out.iter().any(|(n, _)| *n == k) {
                        return Err(de::Error::custom(format!("`{k}` is defined twice")));
                    }
                    let v = map.next_value::<Spanned<T>>()?;
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// A name usable in a job id: `[A-Za-z0-9][A-Za-z0-9_-]*`, at most `max` characters.
pub fn is_entry_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `set: { KEY: value }` as `--set KEY=VALUE` pairs; a bad key is an error at its line.
pub fn set_pairs(
    path: &std::path::Path,
    set: Option<&std::collections::BTreeMap<String, Spanned<crate::workflow::raw::Scalar>>>,
) -> Result<Vec<(String, String)>, crate::workflow::error::WorkflowError> {
    let mut out = Vec::new();
    for (k, v) in set.into_iter().flatten() {
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(crate::workflow::error::WorkflowError::at(
                path,
                v.referenced,
                format!("invalid variable name {k:?} in `set`: use letters, digits and '_'"),
            ));
        }
        out.push((k.clone(), v.value.0.clone()));
    }
    Ok(out)
}
