//! Configuration values that name environment variables (`max_parallel: ${MAX_PARALLEL}`,
//! `input: "${DIR}/x.json"`, `agent_timeout_secs: "$T"`): checked when the file is loaded
//! (each variable must be defined) and set once the job's environment is known.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::items::Input;
use crate::workflow::error::WorkflowError;
use crate::workflow::model::{EnvSetting, MaxParallel, SettingKey, Workflow};

/// A duration written as text: a number of seconds or humantime (`"30s"`, `"1h 30m"`).
pub fn duration_text(t: &str) -> Result<Duration, String> {
    let t = t.trim();
    if let Ok(secs) = t.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Ok(Duration::from_secs_f64(secs));
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("invalid duration {t:?} ({e}): write e.g. \"30s\", \"5m\", \"1h 30m\"")
    })
}

fn count(t: &str, at_least: usize) -> Result<usize, String> {
    match t.trim().parse::<usize>() {
        Ok(n) if n >= at_least => Ok(n),
        _ if at_least > 0 => Err(format!("{t:?} is not a positive number")),
        _ => Err(format!("{t:?} is not a number")),
    }
}

impl Workflow {
    /// This workflow with its environment-dependent settings set from `env` (the job's
    /// environment: the runner's, `--set`, the workflow's `env`). The settings stay listed,
    /// so that the variables they name go to remote workers ([`Workflow::setting_env`]).
    pub fn with_env(&self, env: &BTreeMap<String, String>) -> Result<Workflow, String> {
        let mut wf = self.clone();
        for s in &self.env_settings {
            let text = s.text.render(env).map_err(|e| wrap(s, e))?;
            set(&mut wf, s.key, &text).map_err(|e| wrap(s, e))?;
        }
        Ok(wf)
    }

    /// The names of the environment variables its settings use.
    pub fn setting_env(&self) -> impl Iterator<Item = &str> {
        self.env_settings.iter().flat_map(|s| s.text.names())
    }

    /// The environment variables its settings need that `defined` does not know, as errors
    /// naming the variable and where it is used.
    pub fn undefined_env(&self, path: &Path, defined: &dyn Fn(&str) -> bool) -> Vec<WorkflowError> {
        let mut out = Vec::new();
        for s in &self.env_settings {
            for name in s.text.required() {
                if !defined(name) && !self.env.iter().any(|(k, _)| k == name) {
                    out.push(WorkflowError::At {
                        path: path.to_path_buf(),
                        line: s.line,
                        column: s.column,
                        message: format!(
                            "{} uses the environment variable `{name}`, which is not defined: add it to `env:`, export it, pass `--set {name}=...`, or write `${{{name}:-default}}`",
                            s.name
                        ),
                    });
                }
            }
        }
        out
    }
}

fn wrap(s: &EnvSetting, e: String) -> String {
    format!("{} (line {}): {e}", s.name, s.line)
}

fn set(wf: &mut Workflow, key: SettingKey, text: &str) -> Result<(), String> {
    let m = &mut wf.map;
    match key {
        SettingKey::MaxParallel => m.max_parallel = MaxParallel::Fixed(count(text, 1)?),
        SettingKey::MapTimeout => m.timeout = Some(duration_text(text)?),
        SettingKey::AgentTimeoutSecs => {
            m.timeout = Some(Duration::from_secs(count(text, 0)? as u64))
        }
        SettingKey::SetupTimeout => wf.setup_timeout = Some(duration_text(text)?),
        SettingKey::Offset => m.selection.offset = count(text, 0)?,
        SettingKey::MaxItems => m.selection.max_items = Some(count(text, 0)?),
        SettingKey::BareInput => {
            m.selection.input = Input::from_bare(text, &wf.dir);
            m.bare_input = Some(text.to_owned());
        }
        SettingKey::FileInput => m.selection.input = Input::File(wf.dir.join(text)),
    }
    Ok(())
}
