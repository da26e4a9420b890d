//! What a worker needs to run a job's items, stored with the job in PostgreSQL: the
//! workflow snapshot, the workflow env as the coordinator rendered it (with `--set`), and the
//! setup captures. And the job's queue key, kept in the job directory so that a resume
//! re-attaches to the same rows.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::engine::attempt::vars::JobVars;
use crate::state::atomic::write_atomic;
use crate::state::error::StateError;
use crate::workflow::model::Workflow;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub job_id: String,
    /// The workflow file's text (the job's snapshot).
    pub workflow: String,
    pub workflow_path: PathBuf,
    /// Where steps run by default (when it exists on the worker's machine).
    pub workflow_dir: PathBuf,
    /// The workflow env and `--set` values, rendered by the coordinator.
    pub env: Vec<(String, String)>,
    pub override_keys: Vec<String>,
    /// Captures of setup steps.
    pub captures: Map<String, Value>,
}

impl JobSpec {
    pub fn new(
        workflow_text: String,
        wf: &Workflow,
        workflow_path: PathBuf,
        vars: &JobVars,
    ) -> Self {
        JobSpec {
            job_id: vars.job_id.clone(),
            workflow: workflow_text,
            workflow_path,
            workflow_dir: wf.dir.clone(),
            env: vars.env_pairs(wf),
            override_keys: vars.override_keys.clone(),
            captures: vars.captures.clone(),
        }
    }

    /// The job's variables on a worker: the worker's own environment, with the job's env on
    /// top, and the job's setup captures.
    pub fn vars(&self, wf: &Workflow) -> JobVars {
        let mut env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
        env.remove(crate::engine::postgres::url::URL_VAR);
        env.extend(self.env.iter().cloned());
        JobVars {
            job_id: self.job_id.clone(),
            workflow_name: wf.name.clone(),
            env,
            captures: self.captures.clone(),
            override_keys: self.override_keys.clone(),
        }
    }
}

/// The file in the job directory holding its queue key.
fn key_file(job_dir: &Path) -> PathBuf {
    job_dir.join("postgres-key")
}

/// The job's queue key: made (random) on its first PostgreSQL run, then kept, so that job
/// ids repeated across state directories never share rows.
pub fn job_key(job_dir: &Path, job_id: &str) -> Result<String, StateError> {
    let path = key_file(job_dir);
    match std::fs::read_to_string(&path) {
        Ok(k) if !k.trim().is_empty() => return Ok(k.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StateError::io("read", &path, e)),
    }
    let key = format!("{job_id}/{:016x}", fastrand::u64(..));
    write_atomic(&path, format!("{key}\n").as_bytes())?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_and_kept() {
        let d = tempfile::tempdir().unwrap();
        let k1 = job_key(d.path(), "job-1").unwrap();
        assert!(k1.starts_with("job-1/"), "{k1}");
        assert_eq!(job_key(d.path(), "job-1").unwrap(), k1);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(job_key(other.path(), "job-1").unwrap(), k1);
    }

    #[test]
    fn worker_vars_use_the_jobs_env_over_the_workers() {
        let wf = crate::workflow::load::load_str(
            "name: w\nenv:\n  A: x\nmap:\n  input: i.json\n  agent_template:\n    - shell: 'true'\n",
            Path::new("w.yml"),
            Path::new("/tmp"),
        )
        .unwrap();
        let spec = JobSpec {
            job_id: "j".into(),
            workflow: String::new(),
            workflow_path: "w.yml".into(),
            workflow_dir: "/tmp".into(),
            env: vec![
                ("A".into(), "from-coordinator".into()),
                ("PATH".into(), "/x".into()),
            ],
            override_keys: vec!["PATH".into()],
            captures: Map::new(),
        };
        let vars = spec.vars(&wf);
        assert_eq!(vars.env["A"], "from-coordinator");
        assert_eq!(
            vars.env_pairs(&wf),
            vec![
                ("A".to_owned(), "from-coordinator".to_owned()),
                ("PATH".to_owned(), "/x".to_owned())
            ]
        );
        assert!(!vars.env.contains_key(crate::engine::postgres::url::URL_VAR));
    }
}
