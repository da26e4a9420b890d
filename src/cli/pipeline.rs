//! `runner run PIPELINE.yml` and `runner resume <pipeline-id>`: pipeline events as human
//! lines on stderr (node output prefixed with `[node]`) or NDJSON on stdout.

use std::path::Path;

use crate::cli::args::Global;
use crate::cli::out::{errln, line};
use crate::pipeline::run::{OpenPipeline, PipelineEvent, PipelineOptions, run_pipeline};
use crate::session::live::state_name;

pub fn options(g: &Global, max_parallel: Option<u32>) -> anyhow::Result<PipelineOptions> {
    let state_dir = if g.state_dir.is_absolute() {
        g.state_dir.clone()
    } else {
        std::env::current_dir()?.join(&g.state_dir)
    };
    Ok(PipelineOptions {
        state_dir,
        quiet: g.quiet,
        max_parallel: max_parallel.map(|n| n as usize),
    })
}

/// Run an opened pipeline; returns the exit code.
pub fn run(open: OpenPipeline, opts: PipelineOptions, json: bool) -> anyhow::Result<i32> {
    let quiet = opts.quiet;
    let mut sink = |ev: &PipelineEvent| {
        if json
            && !matches!(ev, PipelineEvent::NodeOutput { .. })
            && let Ok(text) = serde_json::to_string(ev)
        {
            line(&text);
        }
        if let Some(text) = human(ev, quiet) {
            errln!("{text}");
        }
    };
    Ok(run_pipeline(open, opts, &mut sink)?.exit_code())
}

fn human(ev: &PipelineEvent, quiet: bool) -> Option<String> {
    Some(match ev {
        PipelineEvent::PipelineStarted {
            pipeline_id,
            pipeline,
            command,
        } => {
            let verb = if command == "run" {
                "started"
            } else {
                "continuing"
            };
            format!("runner: pipeline {pipeline_id} {verb} ({pipeline})")
        }
        PipelineEvent::Warning { message } => format!("warning: {message}"),
        PipelineEvent::NodeStarted { node, job_id, how } if !quiet => {
            let verb = if how == "run" { "starts" } else { "resumes" };
            format!("runner: job {node} {verb} as {job_id}")
        }
        PipelineEvent::NodeOutput { node, line } => format!("[{node}] {line}"),
        PipelineEvent::NodeFinished {
            node,
            state,
            exit_code,
            error,
            ..
        } => format!(
            "runner: job {node} {}{}{}",
            state.name(),
            exit_code
                .map(|c| format!(" (exit {c})"))
                .unwrap_or_default(),
            error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
        ),
        PipelineEvent::NodeSkipped { node, reason } => {
            format!("runner: job {node} skipped: {reason}")
        }
        PipelineEvent::Paused { reason } => format!(
            "paused: no new job starts until `runner resume`{}",
            reason
                .as_ref()
                .map(|r| format!(" (reason: {r})"))
                .unwrap_or_default()
        ),
        PipelineEvent::Unpaused {} => "resumed: starting jobs again".into(),
        PipelineEvent::Interrupted { signal } => format!(
            "runner: {signal}: stopping the running jobs; send it again to kill their items at once"
        ),
        PipelineEvent::PipelineFinished {
            pipeline_id,
            state,
            completed,
            failed,
            skipped,
            pending,
            duration_ms,
            ..
        } => {
            let mut text = format!(
                "runner: pipeline {pipeline_id} {}: {completed} completed, {failed} failed, {skipped} skipped, {pending} not run ({:.1}s)",
                state_name(*state),
                *duration_ms as f64 / 1000.0
            );
            if *state != crate::state::records::JobState::Completed {
                text.push_str(&format!(
                    "; `runner resume {pipeline_id}` runs what is left"
                ));
            }
            text
        }
        _ => return None,
    })
}

/// `validate` of a pipeline file.
pub fn validate(path: &Path) -> anyhow::Result<i32> {
    let p = crate::pipeline::load::load_pipeline_file(path)?.pipeline;
    errln!(
        "{}: ok: pipeline {:?}, {} job(s) ({}), at most {} at once",
        path.display(),
        p.name,
        p.nodes.len(),
        p.nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        p.max_parallel_jobs
    );
    Ok(0)
}
