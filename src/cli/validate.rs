//! `runner validate WORKFLOW`

use crate::cli::args::ValidateArgs;
use crate::items::Input;
use crate::workflow::load::load_file;

pub fn validate(a: &ValidateArgs) -> anyhow::Result<i32> {
    let w = load_file(&a.workflow)?.workflow;
    let input = match (&w.map.bare_input, &w.map.selection.input) {
        (Some(bare), _) => {
            format!("`{bare}` (a file if it exists when the map starts, else a command)")
        }
        (None, Input::File(p)) => format!("file {}", p.display()),
        (None, Input::Command(c)) => format!("command `{c}`"),
    };
    crate::cli::out::errln!(
        "{}: ok: workflow {:?}, {} setup step(s), {} map step(s) per item, {} reduce step(s); items from {input}",
        a.workflow.display(),
        w.name,
        w.setup.len(),
        w.map.steps.len(),
        w.reduce.len()
    );
    Ok(0)
}
