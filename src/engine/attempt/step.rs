//! One workflow step, in any phase: render its `${...}` placeholders, run it, classify the
//! failure, turn captured stdout into a value. `on_failure` handlers run here too.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::engine::attempt::claude;
use crate::engine::attempt::executor::Executor;
use crate::engine::attempt::write_file::{self, WriteFailure};
use crate::engine::limits::meter::AttemptResources;
use crate::engine::process::output::{DEFAULT_LOG_CAP, StreamTarget};
use crate::engine::process::shell::{Exit, ShellCommand};
use crate::state::records::Failure;
use crate::workflow::model::{CaptureFormat, Step, StepKind};
use crate::workflow::template::VarRef;

/// A lookup for `${...}` values (see [`crate::engine::attempt::vars`]).
pub type Lookup<'a> = dyn Fn(&VarRef) -> Option<Cow<'a, Value>> + 'a;

/// Where and how the steps of one unit (an item attempt, the setup, the reduce) run.
#[derive(Debug, Clone)]
pub struct StepEnv {
    pub dir: PathBuf,
    /// Workflow env and `RUNNER_*` variables.
    pub env: Vec<(String, String)>,
    pub kill_grace: Duration,
    /// Log file stem: `<stem>.out` / `<stem>.err` (appended to by every step of the unit).
    pub log_stem: Option<PathBuf>,
    /// Copy output to the runner's stderr (setup/reduce).
    pub tee: bool,
    pub on_spawn: Option<crate::engine::process::shell::SpawnHook>,
    pub kill: crate::engine::controls::KillSwitch,
    /// The unit's resource limits (map attempts only) and what its steps used so far.
    pub resources: AttemptResources,
}

/// A step rendered for one unit, ready to run.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub program: Program,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
}

/// What a rendered step runs.
#[derive(Debug, Clone)]
pub enum Program {
    /// A script for `sh -c`.
    Shell(String),
    /// A command line run without a shell (a Claude step).
    Argv(Vec<String>),
    /// A `write_file` step: the rendered path and content.
    Write { path: String, content: String },
    /// A `validate.result_file`: the file to read.
    Read { path: String },
}

/// Render `step` (and nothing else) with `lookup`.
pub fn render(
    step: &Step,
    index: usize,
    senv: &StepEnv,
    lookup: &Lookup<'_>,
) -> Result<Rendered, Failure> {
    let tmpl = |e: String| Failure::Template {
        message: e,
        step: index,
    };
    let plain = |t: &crate::workflow::template::Template| {
        t.render_plain(lookup).map_err(|e| tmpl(e.to_string()))
    };
    let cwd = match &step.working_dir {
        Some(w) => {
            let p = plain(w)?;
            resolve_dir(&senv.dir, &p)
        }
        None => senv.dir.clone(),
    };
    let mut env = senv.env.clone();
    for (k, v) in &step.env {
        env.push((k.clone(), plain(v)?));
    }
    let program = match &step.kind {
        StepKind::Shell => Program::Shell(
            step.shell
                .render_shell(lookup)
                .map_err(|e| tmpl(e.to_string()))?,
        ),
        StepKind::Claude => {
            let argv = claude::argv(&plain(&step.shell)?, &env);
            env.push(claude::env());
            Program::Argv(argv)
        }
        StepKind::WriteFile(w) => Program::Write {
            path: plain(&w.path)?,
            content: plain(&step.shell)?,
        },
        StepKind::ReadFile => Program::Read {
            path: plain(&step.shell)?,
        },
    };
    Ok(Rendered { program, cwd, env })
}

fn resolve_dir(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Outcome of one step. `shell` is `${shell.*}` for the next steps (`output`, `stderr`),
/// when the step keeps its output.
#[derive(Debug, Clone)]
pub enum StepOutcome {
    Ok {
        captured: Option<(String, Value)>,
        shell: Option<Value>,
    },
    Failed {
        failure: Failure,
        stderr_tail: String,
        shell: Option<Value>,
    },
}

impl StepOutcome {
    /// A step that failed before it ran (its template could not be rendered).
    pub fn not_run(failure: Failure) -> Self {
        StepOutcome::Failed {
            failure,
            stderr_tail: String::new(),
            shell: None,
        }
    }

    /// `${shell.*}` of this step, if it kept its output.
    pub fn shell(&self) -> Option<&Value> {
        match self {
            StepOutcome::Ok { shell, .. } | StepOutcome::Failed { shell, .. } => shell.as_ref(),
        }
    }
}

/// Run a rendered step with an optional time limit (`limit` is min(step, remaining item time);
/// `item_timeout` is what a timeout is reported as when the item's limit is what ran out).
pub async fn run<E: Executor>(
    exec: &E,
    step: &Step,
    index: usize,
    rendered: Rendered,
    senv: &StepEnv,
    limit: Option<Duration>,
    cancel: &CancellationToken,
) -> StepOutcome {
    let target = |ext: &str, capture: bool| StreamTarget {
        log: senv.log_stem.as_ref().map(|s| s.with_extension(ext)),
        log_cap: DEFAULT_LOG_CAP,
        capture,
        tee: senv.tee,
    };
    let (script, argv) = match rendered.program {
        Program::Shell(script) => (script, Vec::new()),
        Program::Argv(argv) => (display_argv(&argv), argv),
        Program::Write { path, content } => {
            return write_file_step(step, index, &path, &content, &rendered.cwd);
        }
        Program::Read { path } => return read_file_step(index, &path, &rendered.cwd),
    };
    let cmd = ShellCommand {
        script,
        argv,
        cwd: rendered.cwd,
        env: rendered.env,
        timeout: limit,
        kill_grace: senv.kill_grace,
        stdout: target("out", step.capture.is_some() || step.keep_output),
        stderr: target("err", false),
        on_spawn: senv.on_spawn.clone(),
        kill: senv.kill.clone(),
        limits: senv.resources.step(),
    };
    let r = exec.run(cmd, cancel.clone()).await;
    senv.resources.add(r.usage);
    let shell = step.keep_output.then(|| {
        serde_json::json!({
            "output": String::from_utf8_lossy(&r.stdout).trim_end_matches(['\n', '\r']),
            "stderr": r.stderr_tail.trim_end_matches(['\n', '\r']),
        })
    });
    let failure = match r.exit {
        Exit::Success => None,
        Exit::Code(c @ (126 | 127)) => Some(Failure::Spawn {
            message: format!(
                "{} (exit {c}){}",
                if c == 127 {
                    "command not found"
                } else {
                    "command not executable"
                },
                last_line(&r.stderr_tail)
                    .map(|l| format!(": {l}"))
                    .unwrap_or_default()
            ),
            step: index,
        }),
        Exit::Code(code) => Some(Failure::Exit { code, step: index }),
        Exit::Signal(signal) => Some(Failure::Signal {
            signal,
            step: index,
        }),
        Exit::Timeout(d) => Some(Failure::Timeout {
            after_ms: d.as_millis() as u64,
            step: index,
        }),
        Exit::Spawn(message) => Some(Failure::Spawn {
            message,
            step: index,
        }),
        Exit::Cancelled => Some(Failure::Cancelled { step: index }),
        Exit::Limit(hit) => Some(hit.failure(index)),
    };
    if let Some(failure) = failure {
        return StepOutcome::Failed {
            failure,
            stderr_tail: r.stderr_tail,
            shell,
        };
    }
    let captured = match &step.capture {
        None => None,
        Some(name) => match capture_value(&r.stdout, step.capture_format) {
            Ok(v) => Some((name.clone(), v)),
            Err(message) => {
                return StepOutcome::Failed {
                    failure: Failure::Template {
                        message,
                        step: index,
                    },
                    stderr_tail: r.stderr_tail,
                    shell,
                };
            }
        },
    };
    StepOutcome::Ok { captured, shell }
}

/// A command line as shell text, for logs and messages.
fn display_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| crate::workflow::template::quote::quote_bare(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Run a `write_file` step in the runner itself: its output (for captures and
/// `${shell.output}`) is Prodigy's `Wrote N bytes to PATH (format: F)`.
fn write_file_step(
    step: &Step,
    index: usize,
    path: &str,
    content: &str,
    cwd: &Path,
) -> StepOutcome {
    let StepKind::WriteFile(spec) = &step.kind else {
        return StepOutcome::not_run(Failure::Spawn {
            message: "not a write_file step".to_owned(),
            step: index,
        });
    };
    let message = match write_file::write(spec, path, content, cwd) {
        Ok(m) => m,
        Err(WriteFailure::Content(message)) => {
            return StepOutcome::not_run(Failure::Template {
                message,
                step: index,
            });
        }
        Err(WriteFailure::Io(message)) => {
            return StepOutcome::not_run(Failure::Spawn {
                message,
                step: index,
            });
        }
    };
    let shell = step
        .keep_output
        .then(|| serde_json::json!({ "output": message, "stderr": "" }));
    let captured = step.capture.as_ref().map(|name| {
        capture_value(message.as_bytes(), step.capture_format).map(|v| (name.clone(), v))
    });
    match captured.transpose() {
        Ok(captured) => StepOutcome::Ok { captured, shell },
        Err(message) => StepOutcome::Failed {
            failure: Failure::Template {
                message,
                step: index,
            },
            stderr_tail: String::new(),
            shell,
        },
    }
}

/// Read a `validate.result_file` in the runner itself: its content is the step's output.
fn read_file_step(index: usize, path: &str, cwd: &Path) -> StepOutcome {
    match std::fs::read(resolve_dir(cwd, path)) {
        Ok(bytes) => StepOutcome::Ok {
            captured: None,
            shell: Some(serde_json::json!({
                "output": String::from_utf8_lossy(&bytes),
                "stderr": "",
            })),
        },
        Err(e) => StepOutcome::not_run(Failure::Spawn {
            message: format!("cannot read {path}: {e}"),
            step: index,
        }),
    }
}

fn last_line(s: &str) -> Option<&str> {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::trim)
}

/// Captured stdout as a value, per `capture_format`.
pub fn capture_value(stdout: &[u8], format: CaptureFormat) -> Result<Value, String> {
    let text = String::from_utf8_lossy(stdout);
    let trimmed = text.trim_end_matches(['\n', '\r']);
    match format {
        CaptureFormat::String => Ok(Value::String(trimmed.to_owned())),
        CaptureFormat::Json => serde_json::from_str(trimmed)
            .map_err(|e| format!("capture_format: json, but the output is not JSON: {e}")),
        CaptureFormat::Lines => Ok(Value::Array(
            trimmed
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| Value::String(l.to_owned()))
                .collect(),
        )),
        CaptureFormat::Number => trimmed
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|f| {
                if f.fract() == 0.0 && f.abs() < 9e15 {
                    Some(Value::from(f as i64))
                } else {
                    serde_json::Number::from_f64(f).map(Value::Number)
                }
            })
            .ok_or_else(|| format!("capture_format: number, but the output is {trimmed:?}")),
        CaptureFormat::Boolean => match trimmed.trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            other => Err(format!(
                "capture_format: boolean, but the output is {other:?}"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_formats() {
        assert_eq!(
            capture_value(b"hi\n", CaptureFormat::String).unwrap(),
            Value::from("hi")
        );
        assert_eq!(
            capture_value(b"{\"a\":1}\n", CaptureFormat::Json).unwrap()["a"],
            1
        );
        assert_eq!(
            capture_value(b"a\n\nb\n", CaptureFormat::Lines).unwrap(),
            serde_json::json!(["a", "b"])
        );
        assert_eq!(
            capture_value(b"42\n", CaptureFormat::Number).unwrap(),
            Value::from(42)
        );
        assert_eq!(
            capture_value(b"1.5", CaptureFormat::Number).unwrap(),
            Value::from(1.5)
        );
        assert!(capture_value(b"x", CaptureFormat::Number).is_err());
        assert_eq!(
            capture_value(b"true\n", CaptureFormat::Boolean).unwrap(),
            Value::Bool(true)
        );
        assert!(capture_value(b"nope", CaptureFormat::Json).is_err());
    }
}
