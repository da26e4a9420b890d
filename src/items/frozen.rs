//! The selected items, spilled to a temporary file as they stream out of the selection, with
//! their ids: what `items.jsonl` is written from (and what `--dry-run` prints), so that no
//! more than one item's value is in memory at a time (unless `sort_by` or `distinct` needs
//! them all).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde_json::Value;

use super::error::ItemsError;
use super::item::{IdAssigner, IdFn, Ids, Renamed, RepeatedIds, position_id};
use super::selection::CompiledSelection;

/// The selected items, in order: their ids in memory, their values in an anonymous temporary
/// file (one compact JSON value per line) that disappears when this is dropped or the
/// process dies.
#[derive(Debug)]
pub struct Frozen {
    spill: File,
    ids: Ids,
    renamed: Option<Renamed>,
}

/// Select the items (reading the input in `base_dir` with `env`), give them their ids and
/// check those, spilling the values to a temporary file in `tmp_dir`.
pub fn freeze(
    selection: &CompiledSelection,
    base_dir: &Path,
    env: &[(String, String)],
    id_fn: Option<IdFn<'_>>,
    repeated: RepeatedIds,
    tmp_dir: &Path,
) -> Result<Frozen, ItemsError> {
    let spill_error = |source| ItemsError::Spill {
        dir: tmp_dir.to_path_buf(),
        source,
    };
    let spill = tempfile::tempfile_in(tmp_dir).map_err(spill_error)?;
    let mut assigner = IdAssigner::new(id_fn);
    let mut w = BufWriter::with_capacity(1 << 20, &spill);
    selection.stream(base_dir, env, &mut |value| {
        assigner.push(&value)?;
        serde_json::to_writer(&mut w, &value)
            .map_err(std::io::Error::from)
            .and_then(|()| w.write_all(b"\n"))
            .map_err(spill_error)
    })?;
    w.flush().map_err(spill_error)?;
    drop(w);
    let positions = assigner.to_rename(repeated);
    let mut renames = Vec::with_capacity(positions.len());
    if !positions.is_empty() {
        let mut wanted = positions.into_iter().peekable();
        each_line(&spill, assigner.len(), |position, raw| {
            if wanted.next_if_eq(&position).is_some() {
                let value: Value = serde_json::from_str(raw).map_err(std::io::Error::from)?;
                renames.push((
                    position,
                    position_id(assigner.id(position), position, &value),
                ));
            }
            Ok(())
        })
        .map_err(spill_error)?;
    }
    let renamed = assigner.rename(renames);
    let ids = assigner.finish()?;
    Ok(Frozen {
        spill,
        ids,
        renamed,
    })
}

impl Frozen {
    /// How many items were selected.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when none were.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The items whose shared id was replaced ([`RepeatedIds::ByPosition`]).
    pub fn renamed(&self) -> Option<&Renamed> {
        self.renamed.as_ref()
    }

    /// Each item's id and its value's compact JSON (one line, no newline), in order.
    pub fn for_each(
        &self,
        mut f: impl FnMut(&str, &str) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        each_line(&self.spill, self.ids.len(), |position, raw| {
            f(self.ids.get(position), raw)
        })
    }
}

/// The first `count` lines of the spill file, with their positions.
fn each_line(
    spill: &File,
    count: usize,
    mut f: impl FnMut(usize, &str) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut r = BufReader::with_capacity(
        1 << 20,
        FromStart {
            file: spill,
            pos: 0,
        },
    );
    let mut line = String::new();
    for position in 0..count {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the temporary items file ended early",
            ));
        }
        f(position, line.strip_suffix('\n').unwrap_or(&line))?;
    }
    Ok(())
}

/// Reads a file from its start with positioned reads, leaving its own offset alone.
struct FromStart<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for FromStart<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::{Input, Selection, compile};
    use serde_json::json;

    fn frozen(input: &str, repeated: RepeatedIds) -> Result<Frozen, ItemsError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("items.jsonl");
        std::fs::write(&file, input).expect("write");
        let sel = compile(&Selection::new(Input::File(file))).expect("compiles");
        freeze(&sel, dir.path(), &[], None, repeated, dir.path())
    }

    fn lines(f: &Frozen) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        f.for_each(|id, raw| {
            out.push((id.to_string(), serde_json::from_str(raw).expect("json")));
            Ok(())
        })
        .expect("reads");
        out
    }

    #[test]
    fn ids_and_values_come_back_in_order() {
        let f = frozen(
            "{\"id\": \"a\", \"v\": \"x\\ny\"}\n{\"id\": 2}\n",
            RepeatedIds::Reject,
        )
        .expect("freezes");
        assert_eq!(f.len(), 2);
        assert_eq!(
            lines(&f),
            vec![
                ("a".to_string(), json!({"id": "a", "v": "x\ny"})),
                ("2".to_string(), json!({"id": 2})),
            ]
        );
    }

    #[test]
    fn repeated_ids_are_renamed_from_the_spilled_values_or_rejected() {
        let input = "{\"id\": \"a\", \"n\": 1}\n{\"id\": \"b\"}\n{\"id\": \"a\", \"n\": 2}\n";
        let f = frozen(input, RepeatedIds::ByPosition).expect("freezes");
        let ids: Vec<String> = lines(&f).into_iter().map(|(id, _)| id).collect();
        assert!(
            ids[0].starts_with("a@0:") && ids[2].starts_with("a@2:"),
            "{ids:?}"
        );
        assert_eq!(ids[1], "b");
        assert_eq!(f.renamed().map(|r| r.count), Some(2));
        match frozen(input, RepeatedIds::Reject) {
            Err(ItemsError::DuplicateId { id, first, second }) => {
                assert_eq!((id.as_str(), first, second), ("a", 0, 2));
            }
            other => panic!("expected a duplicate id, got {other:?}"),
        }
    }
}
