//! `runner report JOB [-o FILE] [--json]`

use crate::cli::args::{Global, ReportCmdArgs};
use crate::cli::out::errln;
use crate::pipeline::journal::is_pipeline;
use crate::report::job_report::pipeline::pipeline_report;
use crate::report::job_report::{build_from, html, load, pipeline_html};
use crate::report::reporter::write_report_file;
use crate::session::open::open_job;
use crate::state::layout::StateDir;

pub fn report(g: &Global, a: &ReportCmdArgs) -> anyhow::Result<i32> {
    let state = StateDir::new(&g.state_dir);
    let dir = open_job(&state, &a.job)?;
    let bytes = if is_pipeline(&dir) {
        let report = pipeline_report(&state, &dir)?;
        match a.json {
            true => serde_json::to_vec_pretty(&report)?,
            false => pipeline_html::page(&report).into_bytes(),
        }
    } else {
        let report = build_from(&load(&dir)?);
        match a.json {
            true => serde_json::to_vec_pretty(&report)?,
            false => html::page(&report).into_bytes(),
        }
    };
    let default = (!a.json).then_some("report.html");
    match a.output.as_deref().or(default.map(std::path::Path::new)) {
        Some(path) => {
            write_report_file(path, &bytes)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            if !g.quiet {
                errln!(
                    "runner: wrote {} ({} KiB)",
                    path.display(),
                    bytes.len().div_ceil(1024)
                );
            }
        }
        None => {
            let _ = crate::cli::out::stdout_bytes(&bytes) && crate::cli::out::stdout_bytes(b"\n");
        }
    }
    Ok(0)
}
