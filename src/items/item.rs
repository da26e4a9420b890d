//! Work items and their identity (SPEC 2.2).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::canonical::canonical_json;
use super::error::ItemsError;

/// A selected work item: its identity and its JSON value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// The item's unique id.
    pub id: String,
    /// The item itself.
    pub value: Value,
}

/// A caller-supplied id function (the workflow's rendered `id:` template).
pub type IdFn<'a> = &'a dyn Fn(&Value) -> Result<String, String>;

/// Give every value its id: `id_fn(value)` when given; else the item's own `"id"` field when
/// it is a string or a number (numbers as their JSON text); else the first 16 hex characters
/// of the blake3 hash of the item's canonical JSON. Two items with the same id are an error.
#[cfg(test)]
pub fn assign_ids(values: Vec<Value>, id_fn: Option<IdFn<'_>>) -> Result<Vec<Item>, ItemsError> {
    assign_ids_with(values, id_fn, RepeatedIds::Reject).map(|(items, _)| items)
}

/// What to do when items share an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepeatedIds {
    /// An error naming the id and its first two positions.
    Reject,
    /// Prodigy does not require unique ids: each item of a repeated id (without an `id:`
    /// template) is identified by its position and content instead, `<id>@<position>:<hash>`.
    ByPosition,
}

/// Items whose shared id was replaced ([`RepeatedIds::ByPosition`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renamed {
    /// How many items got a new id.
    pub count: usize,
    /// The first of them: its shared id and its new one.
    pub example: (String, String),
}

/// [`assign_ids`] with a choice for repeated ids; also says which items were renamed.
#[cfg(test)]
pub fn assign_ids_with(
    values: Vec<Value>,
    id_fn: Option<IdFn<'_>>,
    repeated: RepeatedIds,
) -> Result<(Vec<Item>, Option<Renamed>), ItemsError> {
    let mut assigner = IdAssigner::new(id_fn);
    for value in &values {
        assigner.push(value)?;
    }
    let renames = assigner
        .to_rename(repeated)
        .into_iter()
        .map(|p| (p, position_id(assigner.ids.get(p), p, &values[p])))
        .collect();
    let renamed = assigner.rename(renames);
    let ids = assigner.finish()?;
    let items = values
        .into_iter()
        .enumerate()
        .map(|(p, value)| Item {
            id: ids.get(p).to_string(),
            value,
        })
        .collect();
    Ok((items, renamed))
}

/// The ids of the selected items in order, in one buffer: a million ids cost their bytes
/// and 8 more each, not a `String` apiece.
#[derive(Debug, Default)]
pub struct Ids {
    buf: String,
    ends: Vec<usize>,
}

impl Ids {
    fn push(&mut self, id: &str) {
        self.buf.push_str(id);
        self.ends.push(self.buf.len());
    }

    /// How many ids there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The id of the item at `position` (`""` past the end).
    pub fn get(&self, position: usize) -> &str {
        let start = match position {
            0 => 0,
            p => self.ends.get(p - 1).copied().unwrap_or(self.buf.len()),
        };
        let end = self.ends.get(position).copied().unwrap_or(start);
        &self.buf[start..end]
    }

    /// Positions ordered by id, then position.
    fn sorted_positions(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_unstable_by(|&a, &b| self.get(a).cmp(self.get(b)).then(a.cmp(&b)));
        order
    }
}

/// Gives the selected items their ids one at a time, as they stream past, then checks them:
/// [`IdAssigner::push`] each value in order, [`IdAssigner::to_rename`] and
/// [`IdAssigner::rename`] for repeated ids, then [`IdAssigner::finish`].
pub struct IdAssigner<'a> {
    id_fn: Option<IdFn<'a>>,
    ids: Ids,
}

impl<'a> IdAssigner<'a> {
    /// An assigner using `id_fn` (the `id:` template), else each item's default id.
    pub fn new(id_fn: Option<IdFn<'a>>) -> Self {
        Self {
            id_fn,
            ids: Ids::default(),
        }
    }

    /// How many items have an id so far.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when none has.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The id given to the item at `position`.
    pub fn id(&self, position: usize) -> &str {
        self.ids.get(position)
    }

    /// Give the next item its id.
    pub fn push(&mut self, value: &Value) -> Result<(), ItemsError> {
        let position = self.ids.len();
        let id = match self.id_fn {
            Some(f) => f(value).map_err(|message| ItemsError::IdTemplate { position, message })?,
            None => default_id(value),
        };
        self.ids.push(&id);
        Ok(())
    }

    /// The positions (ascending) of the items to rename with [`position_id`]: those whose id
    /// is shared with another item, when `repeated` allows it and ids are not templated.
    pub fn to_rename(&self, repeated: RepeatedIds) -> Vec<usize> {
        if repeated != RepeatedIds::ByPosition || self.id_fn.is_some() {
            return Vec::new();
        }
        let order = self.ids.sorted_positions();
        let same = |a: usize, b: usize| self.ids.get(a) == self.ids.get(b);
        let mut shared: Vec<usize> = order
            .iter()
            .enumerate()
            .filter(|&(k, &p)| {
                (k > 0 && same(order[k - 1], p)) || order.get(k + 1).is_some_and(|&q| same(q, p))
            })
            .map(|(_, &p)| p)
            .collect();
        shared.sort_unstable();
        shared
    }

    /// Replace the ids at the given positions (ascending); says what was renamed.
    pub fn rename(&mut self, renames: Vec<(usize, String)>) -> Option<Renamed> {
        let (first_position, first_new) = renames.first()?;
        let renamed = Renamed {
            count: renames.len(),
            example: (self.ids.get(*first_position).to_string(), first_new.clone()),
        };
        let old = std::mem::take(&mut self.ids);
        let mut next = renames.into_iter().peekable();
        for position in 0..old.len() {
            match next.next_if(|(p, _)| *p == position) {
                Some((_, new)) => self.ids.push(&new),
                None => self.ids.push(old.get(position)),
            }
        }
        Some(renamed)
    }

    /// The ids, once no two items share one: else an error naming the first repeated id
    /// (the one whose second occurrence comes earliest) and its first two positions. Sorting
    /// positions by id needs far less memory than a hash set of a million ids.
    pub fn finish(self) -> Result<Ids, ItemsError> {
        let ids = self.ids;
        let order = ids.sorted_positions();
        let duplicate = order
            .windows(2)
            .filter(|w| ids.get(w[0]) == ids.get(w[1]))
            .map(|w| (w[0], w[1]))
            .fold(None::<(usize, usize)>, |best, (first, second)| match best {
                Some((_, s)) if s <= second => best,
                _ => Some((first, second)),
            });
        match duplicate {
            Some((first, second)) => Err(ItemsError::DuplicateId {
                id: ids.get(first).to_string(),
                first,
                second,
            }),
            None => Ok(ids),
        }
    }
}

/// The id of an item whose id is shared ([`RepeatedIds::ByPosition`]):
/// `<id>@<position>:<first 8 hex characters of its content hash>`.
pub fn position_id(id: &str, position: usize, value: &Value) -> String {
    format!("{id}@{position}:{}", &content_hash(value)[..8])
}

/// The id of an item without an `id:` template.
fn default_id(value: &Value) -> String {
    match value.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => content_hash(value),
    }
}

/// First 16 hex characters of the blake3 hash of the canonical JSON.
fn content_hash(value: &Value) -> String {
    let hash = blake3::hash(canonical_json(value).as_bytes());
    let mut hex = hash.to_hex().to_string();
    hex.truncate(16);
    hex
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids(values: Vec<Value>) -> Vec<String> {
        assign_ids(values, None)
            .expect("unique")
            .into_iter()
            .map(|i| i.id)
            .collect()
    }

    #[test]
    fn own_string_or_number_id() {
        assert_eq!(
            ids(vec![
                json!({"id": "a"}),
                json!({"id": 7}),
                json!({"id": 2.5})
            ]),
            vec!["a", "7", "2.5"]
        );
    }

    #[test]
    fn hash_when_no_usable_id() {
        let got = ids(vec![
            json!("x"),
            json!({"id": null, "a": 1}),
            json!({"id": [1]}),
        ]);
        for id in &got {
            assert_eq!(id.len(), 16);
            assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        }
        let expected = blake3::hash(br#""x""#).to_hex().to_string();
        assert_eq!(got[0], expected[..16]);
    }

    #[test]
    fn hash_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"x":1,"y":[true]}"#).expect("json");
        let b: Value = serde_json::from_str(r#"{"y":[true],"x":1}"#).expect("json");
        assert_eq!(ids(vec![a])[0], ids(vec![b])[0]);
    }

    #[test]
    fn id_fn_wins_and_its_errors_name_the_position() {
        let f = |v: &Value| -> Result<String, String> {
            v.get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| "no name".to_string())
        };
        let items = assign_ids(vec![json!({"id": 1, "name": "n"})], Some(&f)).expect("ok");
        assert_eq!(items[0].id, "n");
        assert_eq!(items[0].value, json!({"id": 1, "name": "n"}));
        let err = assign_ids(vec![json!({"name": "a"}), json!({})], Some(&f)).expect_err("fails");
        assert!(
            matches!(err, ItemsError::IdTemplate { position: 1, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("item #1"));
    }

    #[test]
    fn duplicate_ids_are_reported_with_positions() {
        let err = assign_ids(
            vec![json!({"id": "a"}), json!({"id": "b"}), json!({"id": "a"})],
            None,
        )
        .expect_err("duplicate");
        match &err {
            ItemsError::DuplicateId { id, first, second } => {
                assert_eq!((id.as_str(), *first, *second), ("a", 0, 2));
            }
            other => panic!("unexpected {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("distinct:") && msg.contains("id:"), "{msg}");
        let err = assign_ids(
            vec![json!("x"), json!("y"), json!("x"), json!("y"), json!("x")],
            None,
        )
        .expect_err("dup");
        assert!(matches!(
            err,
            ItemsError::DuplicateId {
                first: 0,
                second: 2,
                ..
            }
        ));
        let err = assign_ids(vec![json!("x"), json!("y"), json!("y"), json!("x")], None)
            .expect_err("dup");
        assert!(matches!(
            err,
            ItemsError::DuplicateId {
                first: 1,
                second: 2,
                ..
            }
        ));
        let err = assign_ids(vec![json!("same"), json!("same")], None).expect_err("dup");
        assert!(matches!(
            err,
            ItemsError::DuplicateId {
                first: 0,
                second: 1,
                ..
            }
        ));
    }

    #[test]
    fn repeated_ids_by_position_and_content() {
        let (items, renamed) = assign_ids_with(
            vec![
                json!({"id": "a", "n": 1}),
                json!({"id": "b"}),
                json!({"id": "a", "n": 2}),
                json!("same"),
                json!("same"),
            ],
            None,
            RepeatedIds::ByPosition,
        )
        .expect("runs");
        let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids[1], "b");
        assert!(
            ids[0].starts_with("a@0:") && ids[2].starts_with("a@2:"),
            "{ids:?}"
        );
        assert!(ids[3].contains("@3:") && ids[4].contains("@4:"), "{ids:?}");
        let renamed = renamed.expect("renamed");
        assert_eq!(renamed.count, 4);
        assert_eq!(renamed.example, ("a".to_owned(), ids[0].to_owned()));
        // Unique ids are left alone.
        let (_, none) =
            assign_ids_with(vec![json!({"id": 1})], None, RepeatedIds::ByPosition).unwrap();
        assert!(none.is_none());
    }

    #[test]
    fn numeric_and_string_ids_collide() {
        let err = assign_ids(vec![json!({"id": 7}), json!({"id": "7"})], None).expect_err("dup");
        assert!(matches!(err, ItemsError::DuplicateId { .. }));
    }
}
