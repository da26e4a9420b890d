//! `runner validate WORKFLOW`

use crate::cli::args::ValidateArgs;
use crate::items::{Input, InputFormat};
use crate::workflow::load::load_file_with;

pub fn validate(a: &ValidateArgs) -> anyhow::Result<i32> {
    if crate::pipeline::load::is_pipeline_file(&a.workflow) {
        return crate::cli::pipeline::validate(&a.workflow);
    }
    let w = load_file_with(&a.workflow, &[])?.workflow;
    let sel = &w.map.selection;
    let input = match (&w.map.bare_input, &sel.input) {
        (Some(bare), _) => {
            format!("`{bare}` (a file if it exists when the map starts, else a command)")
        }
        (None, Input::File(p)) => format!("file {}", p.display()),
        (None, Input::Command(c)) => format!("command `{c}`"),
    };
    let format = match (sel.format, &w.map.bare_input) {
        (Some(f), _) => format!("{f} (map.input_format)"),
        (None, Some(bare)) => match InputFormat::resolve(None, &Input::File(bare.into())) {
            InputFormat::Auto => "auto".to_string(),
            f => format!("{f} if it is a file (by its extension), else auto"),
        },
        (None, None) => match InputFormat::resolve(None, &sel.input) {
            InputFormat::Auto => "auto".to_string(),
            f => format!("{f} (by its extension)"),
        },
    };
    crate::cli::out::errln!(
        "{}: ok: workflow {:?}, {} setup step(s), {} map step(s) per item, {} reduce step(s); items from {input}, format {format}",
        a.workflow.display(),
        w.name,
        w.setup.len(),
        w.map.steps.len(),
        w.reduce.len()
    );
    Ok(0)
}
