//! `runner report JOB [-o FILE] [--json]`

use crate::cli::args::{Global, ReportCmdArgs};
use crate::cli::out::errln;
use crate::report::job_report::{build_from, html, load};
use crate::report::reporter::write_report_file;
use crate::session::open::open_job;
use crate::state::layout::StateDir;

pub fn report(g: &Global, a: &ReportCmdArgs) -> anyhow::Result<i32> {
    let dir = open_job(&StateDir::new(&g.state_dir), &a.job)?;
    let report = build_from(&load(&dir)?);
    let (bytes, default) = if a.json {
        (serde_json::to_vec_pretty(&report)?, None)
    } else {
        (html::page(&report).into_bytes(), Some("report.html"))
    };
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
