//! `runner run --dry-run`: the selected items and the commands they would run. Writes no
//! state and runs no step (a command `input:` is run, since it only lists items).

use std::io::Write;

use serde_json::Map;

use crate::cli::exit::usage;
use crate::engine::attempt::vars::{JobVars, item_lookup};
use crate::engine::phases::select_items;
use crate::items::{Input, Item};
use crate::workflow::model::{StepKind, Workflow};
use crate::workflow::template::VarRef;

pub fn print(wf: &Workflow, overrides: &[(String, String)]) -> anyhow::Result<i32> {
    let vars = JobVars::build("dry-run", wf, overrides).map_err(usage)?;
    let wf = &wf.with_env(&vars.env).map_err(usage)?;
    // Items that setup produces cannot be listed without running setup.
    let missing = match (&wf.map.selection.input, &wf.map.bare_input) {
        (Input::File(p), _) if !p.exists() => Some(p.display().to_string()),
        (Input::Command(_), Some(bare)) => Some(bare.clone()),
        _ => None,
    };
    if let Some(what) = missing.filter(|_| !wf.setup.is_empty()) {
        crate::cli::out::errln!(
            "runner: the map input `{what}` is read after setup runs (a dry run runs no setup), so the items cannot be listed; setup would run:"
        );
        let mut out = std::io::stdout().lock();
        for s in &wf.setup {
            let _ = writeln!(out, "setup: {}", s.source);
        }
        return Ok(0);
    }
    // A dry run writes no state: the selected items wait in the system's temporary directory.
    let (items, warning) = select_items(wf, &vars, &std::env::temp_dir())?;
    if let Some(w) = warning {
        crate::cli::out::errln!("warning: {w}");
    }
    let mut out = std::io::stdout().lock();
    let empty = Map::new();
    for s in &wf.setup {
        let _ = writeln!(out, "setup: {}", s.source);
    }
    let mut idx = 0;
    let listed = items.for_each(|id, raw| {
        let it = Item {
            id: id.to_string(),
            value: serde_json::from_str(raw)?,
        };
        writeln!(out, "item {}: {}", it.id, it.value)?;
        for st in &wf.map.steps {
            let lookup = |v: &VarRef| item_lookup(&vars, &it, idx, 1, &empty, v);
            let cmd = match &st.kind {
                StepKind::Shell => st.shell.render_shell(&lookup),
                StepKind::Claude => st
                    .shell
                    .render_plain(&lookup)
                    .map(|c| format!("claude: {c}")),
                StepKind::WriteFile(w) => w
                    .path
                    .render_plain(&lookup)
                    .map(|p| format!("write_file: {p}")),
                StepKind::ReadFile => Ok(st.source.clone()),
            }
            .unwrap_or_else(|e| format!("<cannot render: {e}>"));
            writeln!(out, "  $ {cmd}")?;
        }
        idx += 1;
        Ok(())
    });
    if let Err(e) = listed {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(0); // closed pipe: stop quietly
        }
        return Err(e.into());
    }
    for s in &wf.reduce {
        let _ = writeln!(out, "reduce: {}", s.source);
    }
    crate::cli::out::errln!(
        "runner: dry run: {} items selected; nothing was run or written",
        items.len()
    );
    Ok(0)
}
