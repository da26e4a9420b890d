//! Validated workflow settings: what the engine runs. Built by [`super::validate`].

use std::path::PathBuf;
use std::time::Duration;

use crate::items::Selection;
use crate::workflow::template::Template;

/// A workflow ready to run.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: String,
    /// The directory steps run in by default and relative paths resolve against: the
    /// workflow's `working_dir:` (relative to the file), else the directory runner was
    /// started in (recorded in the job, so `resume` from elsewhere uses it again).
    pub dir: PathBuf,
    /// Prodigy's `env_files:` (absolute), read in order when the job's environment is built,
    /// between the runner's environment and the workflow's `env`; a missing file is skipped.
    pub env_files: Vec<PathBuf>,
    /// A Prodigy-format file (`mode: mapreduce`): its items may repeat an `id` (Prodigy does
    /// not require unique ids); such items are identified by position and content.
    pub prodigy: bool,
    /// Workflow `env`, in file order; values may hold `${env.X}`, `${job.id}`, `${workflow.name}`.
    pub env: Vec<(String, Template)>,
    pub setup: Vec<Step>,
    /// Prodigy's `setup: {timeout: ...}`: a limit for the whole setup phase.
    pub setup_timeout: Option<Duration>,
    pub map: MapSpec,
    pub reduce: Vec<Step>,
    pub error_policy: ErrorPolicy,
    /// Where map items run (`executor:`; `--executor` overrides it).
    pub executor: ExecutorKind,
    /// `slurm:` options.
    pub slurm: SlurmOptions,
    /// `notify:`.
    pub notify: Vec<crate::notify::spec::Notify>,
    /// Configuration values that name environment variables (`max_parallel: ${N}`), set
    /// in the fields above once the job's environment is known ([`Workflow::with_env`]).
    pub env_settings: Vec<EnvSetting>,
    /// Git worktree isolation (`isolation:`).
    pub isolation: Isolation,
    /// Prodigy's `merge:` block: steps run in the job's worktree after reduce, instead of
    /// runner merging the job's branch itself.
    pub merge: Option<MergeSpec>,
}

/// Whether the job runs in git worktrees of its own (`isolation:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Default: worktrees for a Prodigy-format file (`mode: mapreduce`) started inside a
    /// git work tree, with the local executor; none otherwise.
    #[default]
    Auto,
    /// `isolation: worktree`: always (outside a git work tree the run is refused).
    Worktree,
    /// `isolation: none`: never.
    None,
}

/// Prodigy's `merge:` block.
#[derive(Debug, Clone)]
pub struct MergeSpec {
    pub steps: Vec<Step>,
    /// A limit for the whole block.
    pub timeout: Option<Duration>,
}

/// A configuration key whose value names environment variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKey {
    MaxParallel,
    /// `map.timeout` / `timeout_per_agent` (a duration).
    MapTimeout,
    /// `map.agent_timeout_secs` (seconds).
    AgentTimeoutSecs,
    /// Prodigy's `setup: { timeout: ... }`.
    SetupTimeout,
    Offset,
    MaxItems,
    /// A bare `input:` (a file if it exists, else a command).
    BareInput,
    /// `input: { file: ... }`.
    FileInput,
}

/// One configuration value naming environment variables, and where it is written.
#[derive(Debug, Clone)]
pub struct EnvSetting {
    pub key: SettingKey,
    /// The key as written in the file (`map.max_parallel`), for messages.
    pub name: &'static str,
    pub text: crate::workflow::template::env_text::EnvText,
    pub line: usize,
    pub column: usize,
}

/// Where the map's items run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutorKind {
    /// Processes on this machine (default).
    #[default]
    Local,
    /// Slurm job arrays; each task runs `runner exec-item` on a node.
    Slurm,
    /// A queue in PostgreSQL; `runner worker` processes on any machines run the items.
    Postgres,
}

impl ExecutorKind {
    /// The name used in workflow files, flags and the job directory.
    pub fn name(self) -> &'static str {
        match self {
            ExecutorKind::Local => "local",
            ExecutorKind::Slurm => "slurm",
            ExecutorKind::Postgres => "postgres",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        s.parse()
    }
}

impl std::str::FromStr for ExecutorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "local" => Ok(ExecutorKind::Local),
            "slurm" => Ok(ExecutorKind::Slurm),
            "postgres" => Ok(ExecutorKind::Postgres),
            other => Err(format!(
                "unknown executor {other:?}: use `local`, `slurm` or `postgres`"
            )),
        }
    }
}

/// Options of the Slurm executor (`slurm:`).
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    /// Slurm's time limit of one array task (its whole batch); `None`: derived.
    pub time_limit: Option<Duration>,
    /// `--cpus-per-task` (`cpus_per_task`, or its old name `cpus_per_item`).
    pub cpus_per_task: Option<u32>,
    /// `--mem` of one task (`mem_per_task`, or its old name `mem_per_item`).
    pub mem_per_task: Option<String>,
    pub sbatch_args: Vec<String>,
    pub poll_interval: Duration,
    /// Most tasks in one array job.
    pub array_size: usize,
    /// Items per array task; `None`: sized from the observed item duration.
    pub items_per_task: Option<usize>,
    /// Items a task runs at once; `None`: `cpus_per_task`, else 1.
    pub parallel_per_task: Option<usize>,
    pub runner_path: Option<PathBuf>,
}

impl SlurmOptions {
    /// Items one task runs at once.
    pub fn parallel(&self) -> usize {
        self.parallel_per_task
            .or(self.cpus_per_task.map(|c| c as usize))
            .unwrap_or(1)
            .max(1)
    }
}

impl Default for SlurmOptions {
    fn default() -> Self {
        SlurmOptions {
            partition: None,
            time_limit: None,
            cpus_per_task: None,
            mem_per_task: None,
            sbatch_args: Vec::new(),
            poll_interval: Duration::from_secs(2),
            array_size: 1000,
            items_per_task: None,
            parallel_per_task: None,
            runner_path: None,
        }
    }
}

/// The map phase.
#[derive(Debug, Clone)]
pub struct MapSpec {
    pub selection: Selection,
    /// A bare `input:` string: a file if it exists when the map starts (after setup),
    /// else a command (Prodigy's rule). `selection.input` is only a first guess then.
    pub bare_input: Option<String>,
    /// The `id:` template (rendered without escaping).
    pub id: Option<Template>,
    pub max_parallel: MaxParallel,
    /// Per attempt of the whole template for one item.
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL when a process group is killed.
    pub kill_grace: Duration,
    /// Limits per attempt (`map.resources`).
    pub resources: Resources,
    /// `map.stuck_after`: attempts running longer are reported, not killed.
    pub stuck_after: Option<Duration>,
    pub retry: RetryPolicy,
    pub steps: Vec<Step>,
}

/// What one attempt of an item may use (`map.resources`); `None` is no limit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    /// Bytes.
    pub memory: Option<u64>,
    /// User + system CPU time.
    pub cpu_time: Option<Duration>,
    /// Processes at once.
    pub processes: Option<u64>,
    /// A CPU share, in CPUs.
    pub cpu: Option<f64>,
    pub nice: Option<i32>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        *self == Resources::default()
    }
}

#[derive(Debug, Clone)]
pub enum MaxParallel {
    /// Default: the number of CPUs.
    Cpus,
    /// A number, or an environment variable (`${N}`) once the job's environment is known.
    Fixed(usize),
}

/// One step: a shell command, a Claude command or a `write_file`.
#[derive(Debug, Clone)]
pub struct Step {
    /// What the step does; `shell` is its text (the shell command, the Claude command, or
    /// the content `write_file` writes).
    pub kind: StepKind,
    pub shell: Template,
    /// The command as written (for logs, dry runs and error messages).
    pub source: String,
    /// 1-based line of the step in the workflow file.
    pub line: usize,
    pub timeout: Option<Duration>,
    pub capture: Option<String>,
    pub capture_format: CaptureFormat,
    /// Keep stdout (and the end of stderr) for `${shell.output}` / `${shell.stderr}` of the
    /// next steps: set when a step of the same phase uses them.
    pub keep_output: bool,
    /// What runs when the step fails (`None`: the step just fails).
    pub on_failure: Option<OnFailure>,
    /// A handler only (Prodigy's `continue_on_error`): its failure does not count.
    pub continue_on_error: bool,
    pub working_dir: Option<Template>,
    pub env: Vec<(String, Template)>,
    /// Prodigy's `validate:`, checked after the step succeeds.
    pub validate: Option<Box<crate::workflow::step_validation::Validation>>,
    /// Prodigy's `commit_required: true`: the step fails unless `HEAD` moved while it ran.
    pub commit_required: bool,
}

impl Step {
    /// Whether a placeholder of the step (its command, `working_dir`, `env`, one of its
    /// `on_failure` handlers, or its `validate:`) names a variable for which `pred` holds.
    pub fn uses(&self, pred: &dyn Fn(&crate::workflow::template::VarRef) -> bool) -> bool {
        let in_template = |t: &Template| t.placeholders().any(|p| pred(&p.var));
        in_template(&self.shell)
            || matches!(&self.kind, StepKind::WriteFile(w) if in_template(&w.path))
            || self.working_dir.as_ref().is_some_and(in_template)
            || self.env.iter().any(|(_, t)| in_template(t))
            || self
                .on_failure
                .as_ref()
                .is_some_and(|o| o.handlers.iter().any(|h| h.uses(pred)))
            || self
                .validate
                .as_ref()
                .is_some_and(|v| v.steps().any(|s| s.uses(pred)))
    }
}

/// The kinds of step.
#[derive(Debug, Clone)]
pub enum StepKind {
    /// `shell:` run with `/bin/sh -c` (values escaped for their quoting context).
    Shell,
    /// Prodigy's `claude:`: `claude --print --dangerously-skip-permissions <command>`, the
    /// rendered command one argument (never parsed by a shell).
    Claude,
    /// Prodigy's `write_file:`: the rendered content written atomically to `path`.
    WriteFile(WriteFile),
    /// Internal (a `validate.result_file`): the file named by the rendered text, read by the
    /// runner; its content is the step's output.
    ReadFile,
}

/// A `write_file:` step (Prodigy's fields and defaults).
#[derive(Debug, Clone)]
pub struct WriteFile {
    /// Relative to the step's working directory.
    pub path: Template,
    pub format: WriteFormat,
    /// Create missing parent directories (default false).
    pub create_dirs: bool,
    /// Permission bits of the file (`mode: "0644"`, the default).
    pub mode: u32,
}

/// How `write_file` treats its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteFormat {
    /// As rendered.
    #[default]
    Text,
    /// Must parse as JSON; written pretty-printed.
    Json,
    /// Must parse as YAML; written as YAML again.
    Yaml,
}

/// A step's `on_failure`, in every phase: after a failed attempt of the step its handlers run
/// in order (stopping at the first that fails, unless it has `continue_on_error`); while
/// attempts are left the step runs again; at the end the failure is forgiven (the phase goes
/// on with the next step) when the last handlers succeeded and `fail` is false.
#[derive(Debug, Clone)]
pub struct OnFailure {
    pub handlers: Vec<Step>,
    /// The step still fails after successful handlers (runner's list of steps; Prodigy's
    /// `fail_workflow: true`).
    pub fail: bool,
    /// Attempts of the failing step, the first included (Prodigy's `max_attempts` /
    /// `max_retries`; 1 = no retry).
    pub attempts: u32,
    /// A failed handler fails the step at once (Prodigy's `handler_failure_fatal`, default
    /// false: the step is then retried or forgiven as if the handler had succeeded; runner's
    /// list of steps: true).
    pub handler_failure_fatal: bool,
}

/// Retry as data: how many attempts, which failures, how long to wait.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    pub jitter: bool,
    pub on: Vec<RetryOn>,
}

impl RetryPolicy {
    /// Attempts of an item under Prodigy's `on_item_failure: retry` without a retry policy.
    pub const PRODIGY_RETRY_ATTEMPTS: u32 = 3;
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff: Backoff::Exponential,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            jitter: false,
            on: vec![RetryOn::Any],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    Fixed,
    Linear,
    Exponential,
}

/// Which failures `retry.on` retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOn {
    Any,
    Timeout,
    Signal,
    Exit(i32),
    /// Any non-zero exit.
    AnyExit,
    /// Any other failure class by name (`memory_limit`, `cpu_limit`, ...).
    Class(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ErrorPolicy {
    pub on_item_failure: OnItemFailure,
    pub max_failures: Option<u64>,
    pub failure_threshold: Option<f64>,
}

impl Default for ErrorPolicy {
    fn default() -> Self {
        ErrorPolicy {
            on_item_failure: OnItemFailure::Dlq,
            max_failures: None,
            failure_threshold: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnItemFailure {
    /// Failed items go to the dead-letter queue (default).
    Dlq,
    /// Failed items are recorded as failed but not queued.
    Skip,
    /// The first item that fails for good stops the map.
    Stop,
}

/// How a captured stdout becomes a value (`capture_format:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaptureFormat {
    /// The text, trailing newlines removed.
    #[default]
    String,
    /// Parsed as JSON.
    Json,
    /// An array of the non-empty lines.
    Lines,
    Number,
    Boolean,
}
