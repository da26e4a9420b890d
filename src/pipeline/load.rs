//! Reading and validating a pipeline file: its keys, every referenced workflow, unknown
//! `needs` and cycles (naming the cycle). Errors name the file, line and column.

use std::path::Path;

use crate::notify::spec::{NotifyOn, validate_notify};
use crate::pipeline::dag::find_cycle;
use crate::pipeline::model::{Node, Pipeline, When, named_priority};
use crate::pipeline::raw::{Probe, RawPipeline};
use crate::state::layout::{MAX_JOB_ID_LEN, validate_job_id};
use crate::workflow::error::WorkflowError;
use crate::workflow::load::load_file;

/// A loaded pipeline and the exact text it came from.
#[derive(Debug)]
pub struct LoadedPipeline {
    pub pipeline: Pipeline,
    pub text: String,
}

/// Is this YAML text a pipeline (a top-level `jobs:` key)? Text that is not a YAML mapping
/// is not (the workflow loader then says what is wrong with it).
pub fn is_pipeline_text(text: &str) -> bool {
    serde_saphyr::from_str::<Probe>(text).is_ok_and(|p| p.jobs.is_some())
}

/// Does the file at `path` hold a pipeline? (Unreadable files are not; their error comes
/// from the loader.)
pub fn is_pipeline_file(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| is_pipeline_text(&t))
}

/// Longest node name: `<pipeline-id>.<node>` must stay a valid job id.
pub const MAX_NODE_LEN: usize = 40;

pub fn load_pipeline_file(path: &Path) -> Result<LoadedPipeline, WorkflowError> {
    let (text, dir) = crate::workflow::load::read_yaml_file(path, "pipeline")?;
    let pipeline = load_pipeline_str(&text, path, &dir)?;
    Ok(LoadedPipeline { pipeline, text })
}

/// Parse and validate pipeline text; `dir` is where workflow paths resolve.
pub fn load_pipeline_str(text: &str, path: &Path, dir: &Path) -> Result<Pipeline, WorkflowError> {
    let raw: RawPipeline =
        serde_saphyr::from_str(text).map_err(|e| crate::workflow::load::yaml_error(path, &e))?;
    let err = |loc, msg: String| WorkflowError::at(path, loc, msg);
    let name = raw.name.value.trim().to_owned();
    if validate_job_id(&name).is_err() {
        return Err(err(
            raw.name.referenced,
            format!(
                "invalid pipeline name {:?}: use letters, digits, '.', '_' and '-' only",
                raw.name.value
            ),
        ));
    }
    let max_parallel_jobs = match &raw.max_parallel_jobs {
        Some(m) if m.value == 0 => {
            return Err(err(
                m.referenced,
                "max_parallel_jobs must be at least 1".into(),
            ));
        }
        Some(m) => m.value as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    if raw.jobs.value.0.is_empty() {
        return Err(err(
            raw.jobs.referenced,
            "a pipeline needs at least one job under `jobs:`".into(),
        ));
    }
    let names: Vec<String> = raw.jobs.value.0.iter().map(|(n, _)| n.clone()).collect();
    let mut nodes = Vec::new();
    for (name, node) in &raw.jobs.value.0 {
        let r = &node.value;
        if !crate::workflow::ordered::is_entry_name(name, MAX_NODE_LEN) {
            return Err(err(
                node.referenced,
                format!(
                    "invalid job name {name:?}: use up to {MAX_NODE_LEN} letters, digits, '_' and '-' (it becomes part of the job id `<pipeline-id>.{name}`)"
                ),
            ));
        }
        let wf_path = dir.join(r.workflow.value.trim());
        load_file(&wf_path).map_err(|e| {
            err(
                r.workflow.referenced,
                format!("job `{name}`: workflow {}: {e}", r.workflow.value),
            )
        })?;
        let mut needs = Vec::new();
        if let Some(list) = &r.needs {
            for need in &list.value {
                let Some(i) = names.iter().position(|n| *n == need.value) else {
                    return Err(err(
                        need.referenced,
                        format!(
                            "job `{name}` needs `{}`, which is not a job of this pipeline (jobs: {})",
                            need.value,
                            names.join(", ")
                        ),
                    ));
                };
                if !needs.contains(&i) {
                    needs.push(i);
                }
            }
        }
        let when = match r.when.as_ref().map(|w| (w.value.trim(), w.referenced)) {
            None | Some(("on_success", _)) => When::OnSuccess,
            Some(("always", _)) => When::Always,
            Some(("on_failure", _)) => When::OnFailure,
            Some((other, loc)) => {
                return Err(err(
                    loc,
                    format!(
                        "unknown when: {other:?}: use on_success (default), always or on_failure"
                    ),
                ));
            }
        };
        let priority = match &r.priority {
            None => 1,
            Some(p) => match p.value.0.trim().parse::<i64>() {
                Ok(n) => n,
                Err(_) => named_priority(&p.value.0).ok_or_else(|| {
                    err(
                        p.referenced,
                        format!(
                            "unknown priority {:?}: use critical, high, normal, low or an integer (higher starts first)",
                            p.value.0
                        ),
                    )
                })?,
            },
        };
        let set = crate::workflow::ordered::set_pairs(path, r.set.as_ref())?;
        nodes.push(Node {
            name: name.clone(),
            workflow: wf_path,
            needs,
            when,
            priority,
            set,
        });
    }
    let needs: Vec<Vec<usize>> = nodes.iter().map(|n| n.needs.clone()).collect();
    if let Some(cycle) = find_cycle(&needs) {
        let shown: Vec<&str> = cycle.iter().map(|&i| nodes[i].name.as_str()).collect();
        let (_, first) = &raw.jobs.value.0[cycle[0]];
        return Err(err(
            first.referenced,
            format!(
                "the jobs' needs form a cycle: {} (each needs the one before it); remove one of these needs",
                shown.join(" -> ")
            ),
        ));
    }
    let notify = validate_notify(
        path,
        raw.notify.as_deref().unwrap_or_default(),
        &[NotifyOn::Success, NotifyOn::Failure],
        "a pipeline notifies on success and failure; put dlq, timeout and stale in the jobs' workflows",
    )?;
    Ok(Pipeline {
        name,
        dir: dir.to_path_buf(),
        max_parallel_jobs,
        nodes,
        notify,
    })
}

/// The job id of node `node` of pipeline `pipeline_id`.
pub fn node_job_id(pipeline_id: &str, node: &str) -> String {
    format!("{pipeline_id}.{node}")
}

/// Can `id` hold nodes (`<id>.<node>` within the job id length limit)?
pub fn pipeline_id_fits(id: &str) -> bool {
    id.len() + 1 + MAX_NODE_LEN <= MAX_JOB_ID_LEN
}
