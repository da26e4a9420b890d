//! Values behind `${...}`: one lookup function per phase, all reading the same job-wide
//! values (job id, workflow name, environment, setup captures).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::items::Item;
use crate::workflow::template::{PathSeg, VarRef, resolve_path};

/// Values every phase can see.
#[derive(Debug, Clone, Default)]
pub struct JobVars {
    pub job_id: String,
    pub workflow_name: String,
    /// The runner's environment with the workflow `env` (and `--set`) applied.
    pub env: BTreeMap<String, String>,
    /// Captures of setup steps, visible in map and reduce.
    pub captures: Map<String, Value>,
    /// `--set` keys and the keys of the workflow's `env_files`, exported to steps even when
    /// the workflow `env` does not list them.
    pub override_keys: Vec<String>,
}

impl JobVars {
    /// The workflow's own env entries (and `--set` overrides, and the variables its
    /// configuration values name) with their final values, for child processes and workers.
    pub fn env_pairs(&self, wf: &crate::workflow::model::Workflow) -> Vec<(String, String)> {
        let mut keys: Vec<&str> = wf.env.iter().map(|(k, _)| k.as_str()).collect();
        for k in self
            .override_keys
            .iter()
            .map(String::as_str)
            .chain(wf.setting_env())
        {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        keys.into_iter()
            .filter_map(|k| self.env.get(k).map(|v| (k.to_owned(), v.clone())))
            .collect()
    }

    /// The runner's environment, then the workflow's `env_files`, then the workflow `env`
    /// (each value may use `${env.X}` of what came before), then `--set` overrides.
    pub fn build(
        job_id: &str,
        wf: &crate::workflow::model::Workflow,
        overrides: &[(String, String)],
    ) -> Result<JobVars, String> {
        let mut vars = JobVars {
            job_id: job_id.to_owned(),
            workflow_name: wf.name.clone(),
            env: std::env::vars().collect(),
            captures: Map::new(),
            override_keys: overrides.iter().map(|(k, _)| k.clone()).collect(),
        };
        for f in &wf.env_files {
            for (k, v) in crate::workflow::env_file::read(f)? {
                if !vars.override_keys.contains(&k) {
                    vars.override_keys.push(k.clone());
                }
                vars.env.insert(k, v);
            }
        }
        let empty = Map::new();
        // `--set` wins over the workflow's value, and values that use `${env.KEY}` see it.
        for (k, v) in overrides {
            vars.env.insert(k.clone(), v.clone());
        }
        // The file's key order is not kept, so evaluate a value only after the workflow env
        // values it names (`${env.OTHER}`); a cycle falls back to the listed order.
        let mut pending: Vec<&(String, crate::workflow::template::Template)> = wf
            .env
            .iter()
            .filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k))
            .collect();
        while !pending.is_empty() {
            let names_pending = |own: &str, t: &crate::workflow::template::Template| {
                t.placeholders().any(|p| {
                    p.var.root == "env"
                        && matches!(p.var.path.as_slice(), [PathSeg::Key(n)]
                            if n != own && pending.iter().any(|(k, _)| k == n))
                })
            };
            let i = pending
                .iter()
                .position(|(k, t)| !names_pending(k, t))
                .unwrap_or(0);
            let (k, t) = pending.remove(i);
            let v = t
                .render_plain(&|v: &VarRef| vars.lookup(v, &empty))
                .map_err(|e| format!("workflow env {k}: {e}"))?;
            vars.env.insert(k.clone(), v);
        }
        Ok(vars)
    }

    /// Look up a root every phase knows (`env`, `job`, `workflow`, setup captures), with
    /// `local` captures (this item's or this phase's) taking precedence.
    pub fn lookup<'a>(
        &'a self,
        var: &VarRef,
        local: &'a Map<String, Value>,
    ) -> Option<Cow<'a, Value>> {
        match var.root.as_str() {
            "env" => match var.path.as_slice() {
                [PathSeg::Key(name)] => self
                    .env
                    .get(name)
                    .map(|v| Cow::Owned(Value::String(v.clone()))),
                _ => None,
            },
            "job" => owned_path(&serde_json::json!({ "id": self.job_id }), &var.path),
            "workflow" => owned_path(
                &serde_json::json!({ "name": self.workflow_name }),
                &var.path,
            ),
            // `${shell.*}` of a step that ran before a resume is gone: empty.
            "shell" if !local.contains_key("shell") => {
                Some(Cow::Owned(Value::String(String::new())))
            }
            name => local
                .get(name)
                .or_else(|| self.captures.get(name))
                .and_then(|v| resolve_path(v, &var.path))
                .map(Cow::Borrowed),
        }
    }
}

fn owned_path(v: &Value, path: &[PathSeg]) -> Option<Cow<'static, Value>> {
    resolve_path(v, path).map(|v| Cow::Owned(v.clone()))
}

/// `${item...}`, `${item_id}`, `${item_index}` (0-based, the item's place in the job),
/// `${item_json}` (the item as compact JSON text), `${attempt}` on top of the job values.
pub fn item_lookup<'a>(
    job: &'a JobVars,
    item: &'a Item,
    index: usize,
    attempt: u32,
    captures: &'a Map<String, Value>,
    var: &VarRef,
) -> Option<Cow<'a, Value>> {
    let single = |v: Value| var.path.is_empty().then_some(Cow::Owned(v));
    match var.root.as_str() {
        "item" => resolve_path(&item.value, &var.path).map(Cow::Borrowed),
        "item_id" => single(Value::String(item.id.clone())),
        "item_index" => single(Value::from(index)),
        "item_json" => single(Value::String(item.value.to_string())),
        "attempt" => single(Value::from(attempt)),
        _ => job.lookup(var, captures),
    }
}

/// `${map...}` in reduce.
pub fn reduce_lookup<'a>(
    job: &'a JobVars,
    map: &'a Value,
    captures: &'a Map<String, Value>,
    var: &VarRef,
) -> Option<Cow<'a, Value>> {
    match var.root.as_str() {
        "map" => resolve_path(map, &var.path).map(Cow::Borrowed),
        _ => job.lookup(var, captures),
    }
}
