//! The workflow file exactly as written: serde structs, Prodigy aliases included.
//!
//! Nothing here is validated beyond YAML types; [`super::validate`] turns a [`RawWorkflow`]
//! into the settings the engine runs. Every key is listed, so an unknown key is an error that
//! names it and its line; Prodigy-only keys are listed too so that they get a message of
//! their own instead of "unknown field".

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A key that Prodigy understands but runner does not run (agent steps, git merges).
pub type ProdigyOnly = Option<Spanned<IgnoredAny>>;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWorkflow {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub mode: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, Scalar>>")]
    pub env: Option<BTreeMap<String, Spanned<Scalar>>>,
    #[serde(default)]
    #[schemars(with = "Option<Steps>")]
    pub setup: Option<Spanned<Steps>>,
    #[schemars(with = "RawMap")]
    pub map: Spanned<RawMap>,
    #[serde(default)]
    #[schemars(with = "Option<Steps>")]
    pub reduce: Option<Spanned<Steps>>,
    #[serde(default)]
    #[schemars(with = "Option<RawErrorPolicy>")]
    pub error_policy: Option<Spanned<RawErrorPolicy>>,
    // Prodigy's top-level spellings of error_policy keys.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub on_item_failure: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub max_failures: Option<Spanned<u64>>,
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub failure_threshold: Option<Spanned<f64>>,
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub continue_on_failure: Option<Spanned<bool>>,
    /// Where the map's items run: `local` (default), `slurm` or `postgres`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub executor: Option<Spanned<String>>,
    /// Options of the Slurm executor.
    #[serde(default)]
    #[schemars(with = "Option<RawSlurm>")]
    pub slurm: Option<Spanned<RawSlurm>>,
    /// Notifications: a command or webhook told about success, failure, DLQ items,
    /// timeouts and stuck items.
    #[serde(default)]
    #[schemars(with = "Option<Vec<crate::notify::raw::RawNotify>>")]
    pub notify: Option<Vec<Spanned<crate::notify::raw::RawNotify>>>,
    /// The directory steps run in and relative paths resolve against, relative to the
    /// workflow file (default: the directory runner was started in).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub working_dir: Option<Spanned<String>>,
    /// Prodigy: `.env` files (`KEY=value` lines) read in order when the job's environment is
    /// built, relative to the working directory; a missing file is skipped.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub env_files: Option<Spanned<Vec<String>>>,
    /// Prodigy: how item errors are reported; accepted, runner reports each failure as it
    /// happens and all of them at the end.
    #[serde(default)]
    #[schemars(with = "Option<ErrorCollection>")]
    pub error_collection: Option<Spanned<ErrorCollection>>,
    /// Git worktree isolation: `worktree` or `none` (default: worktrees for a
    /// Prodigy-format file started inside a git work tree).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub isolation: Option<Spanned<String>>,
    /// Prodigy: steps run in the job's worktree after reduce (a list, or
    /// `{commands: [...], timeout: N}`), instead of runner merging the job's branch.
    #[serde(default)]
    #[schemars(with = "Option<Steps>")]
    pub merge: Option<Spanned<Steps>>,
    // Prodigy-only.
    #[serde(default)]
    #[schemars(skip)]
    pub secrets: ProdigyOnly,
    #[serde(default)]
    #[schemars(skip)]
    pub profiles: ProdigyOnly,
    #[serde(default)]
    #[schemars(skip)]
    pub worktree: ProdigyOnly,
    #[serde(default)]
    #[schemars(skip)]
    pub commit_required: ProdigyOnly,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMap {
    #[schemars(with = "RawInput")]
    pub input: Spanned<RawInput>,
    /// How the input is read: `json`, `jsonl`, `lines` or `auto` (default: by the file's
    /// extension, else `auto`).
    #[serde(default)]
    #[schemars(with = "Option<InputFormatName>")]
    pub input_format: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub json_path: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub filter: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub sort_by: Option<Spanned<String>>,
    /// A number, or an environment variable such as `${OFFSET}`.
    #[serde(default)]
    #[schemars(with = "Option<Scalar>")]
    pub offset: Option<Spanned<Scalar>>,
    /// A number, or an environment variable such as `${MAX_ITEMS}`.
    #[serde(default)]
    #[schemars(with = "Option<Scalar>")]
    pub max_items: Option<Spanned<Scalar>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub distinct: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub id: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<Scalar>")]
    pub max_parallel: Option<Spanned<Scalar>>,
    #[serde(default)]
    #[schemars(with = "Option<DurationValue>")]
    pub timeout: Option<Spanned<DurationValue>>,
    /// Prodigy: seconds per agent (a number or an environment variable such as `${T}`).
    #[serde(default)]
    #[schemars(with = "Option<Scalar>")]
    pub agent_timeout_secs: Option<Spanned<Scalar>>,
    /// Prodigy's timeout settings of the map.
    #[serde(default)]
    #[schemars(with = "Option<RawTimeoutConfig>")]
    pub timeout_config: Option<Spanned<RawTimeoutConfig>>,
    /// Prodigy: "600s", "10m" or seconds.
    #[serde(default)]
    #[schemars(with = "Option<DurationValue>")]
    pub timeout_per_agent: Option<Spanned<DurationValue>>,
    #[serde(default)]
    #[schemars(with = "Option<RawRetry>")]
    pub retry: Option<Spanned<RawRetry>>,
    /// Prodigy: extra attempts after the first.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub retry_on_failure: Option<Spanned<u32>>,
    #[serde(default)]
    #[schemars(with = "Option<DurationValue>")]
    pub kill_grace: Option<Spanned<DurationValue>>,
    /// Limits per item attempt (docs/resources.md).
    #[serde(default)]
    #[schemars(with = "Option<RawResources>")]
    pub resources: Option<Spanned<RawResources>>,
    /// Report (and notify `stale`) an item attempt running longer than this; it is not killed.
    #[serde(default)]
    #[schemars(with = "Option<DurationValue>")]
    pub stuck_after: Option<Spanned<DurationValue>>,
    #[serde(default)]
    #[schemars(with = "Option<Steps>")]
    pub agent_template: Option<Spanned<Steps>>,
    #[serde(default)]
    #[schemars(with = "Option<Steps>")]
    pub steps: Option<Spanned<Steps>>,
}

/// Prodigy's `map.timeout_config`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTimeoutConfig {
    /// Seconds per item attempt (or per step with `timeout_policy: per_command`).
    #[serde(default)]
    #[schemars(with = "Option<Scalar>")]
    pub agent_timeout_secs: Option<Spanned<Scalar>>,
    /// `per_agent` (default), `per_command` or `hybrid`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timeout_policy: Option<Spanned<String>>,
    /// Seconds between SIGTERM and SIGKILL (`map.kill_grace`).
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub cleanup_grace_period_secs: Option<Spanned<u64>>,
    /// What a timed-out item does: `dlq` (default) or `graceful_terminate` (both: the
    /// attempt is killed, TERM then KILL, and the item follows the error policy).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timeout_action: Option<Spanned<String>>,
    /// Accepted, no effect (runner always reports timeouts).
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub enable_monitoring: Option<Spanned<bool>>,
    /// Seconds per step: `shell` for every shell step, `shell_N` for the N-th (0-based);
    /// `claude`, `claude_N` are accepted for Prodigy's agent steps.
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, u64>>")]
    pub command_timeouts: Option<Spanned<BTreeMap<String, u64>>>,
}

/// `slurm:` options (used with `executor: slurm`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSlurm {
    #[serde(default)]
    pub partition: Option<String>,
    /// The Slurm time limit of one array task (its whole batch of items); default: derived
    /// from `map.timeout` and the batch size.
    #[serde(default)]
    #[schemars(with = "Option<DurationValue>")]
    pub time_limit: Option<Spanned<DurationValue>>,
    /// CPUs of one array task (`--cpus-per-task`); also the default `parallel_per_task`.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub cpus_per_task: Option<Spanned<u32>>,
    /// The old name of `cpus_per_task`.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub cpus_per_item: Option<Spanned<u32>>,
    /// Memory of one array task (`--mem`), Slurm syntax, e.g. `2G` or `500M`.
    #[serde(default)]
    #[schemars(with = "Option<Scalar>")]
    pub mem_per_task: Option<Spanned<Scalar>>,
    /// The old name of `mem_per_task`.
    #[serde(default)]
    #[schemars(with = "Option<Scalar>")]
    pub mem_per_item: Option<Spanned<Scalar>>,
    /// Extra `sbatch` arguments, passed as given.
    #[serde(default)]
    pub sbatch_args: Option<Vec<String>>,
    /// How often the coordinator polls Slurm and the outcome files.
    #[serde(default)]
    #[schemars(with = "Option<DurationValue>")]
    pub poll_interval: Option<Spanned<DurationValue>>,
    /// Most tasks in one array job (default 1000).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub array_size: Option<Spanned<u32>>,
    /// Items each array task runs (default: sized so that a task runs about a minute).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub items_per_task: Option<Spanned<u32>>,
    /// Items an array task runs at once (default: `cpus_per_task`, else 1).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub parallel_per_task: Option<Spanned<u32>>,
    /// The runner binary on the compute nodes (default: this binary's path).
    #[serde(default)]
    pub runner_path: Option<String>,
}

/// `map.resources`: what one attempt of an item may use.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawResources {
    /// Memory, e.g. `2G`, `512M` (units are powers of 1024; a bare number is bytes).
    #[serde(default)]
    #[schemars(with = "Option<Scalar>")]
    pub memory: Option<Spanned<Scalar>>,
    /// CPU time (user + system), e.g. `10m`.
    #[serde(default)]
    #[schemars(with = "Option<DurationValue>")]
    pub cpu_time: Option<Spanned<DurationValue>>,
    /// Processes running at once.
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub processes: Option<Spanned<u64>>,
    /// A CPU share in CPUs, e.g. `1.5` (needs cgroup v2).
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub cpu: Option<Spanned<f64>>,
    /// Scheduling priority, -20 (highest) to 19 (lowest).
    #[serde(default)]
    #[schemars(with = "Option<i64>")]
    pub nice: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub max_attempts: Option<Spanned<u32>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub backoff: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<DurationValue>")]
    pub initial_delay: Option<Spanned<DurationValue>>,
    #[serde(default)]
    #[schemars(with = "Option<DurationValue>")]
    pub max_delay: Option<Spanned<DurationValue>>,
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub jitter: Option<Spanned<bool>>,
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub on: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawErrorPolicy {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub on_item_failure: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub max_failures: Option<Spanned<u64>>,
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub failure_threshold: Option<Spanned<f64>>,
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub continue_on_failure: Option<Spanned<bool>>,
    // Prodigy knobs that have no effect here; accepted so Prodigy files run unchanged.
    #[serde(default)]
    #[schemars(with = "Option<ErrorCollection>")]
    pub error_collection: Option<Spanned<ErrorCollection>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub circuit_breaker: ProdigyOnly,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub retry_config: ProdigyOnly,
}

/// One step: `shell`, Prodigy's `claude` or `write_file`; the other Prodigy-only kinds are
/// listed so they are rejected by name.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub shell: Option<Spanned<String>>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    #[schemars(with = "Option<DurationValue>")]
    pub timeout: Option<Spanned<DurationValue>>,
    /// A variable name, or Prodigy's `shell.output` (the output is `${shell.output}` of
    /// the next steps, as every step's is).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub capture: Option<Spanned<String>>,
    /// Prodigy: `true` (capture as `${shell.output}`-style) or a variable name.
    #[serde(default)]
    #[schemars(with = "Option<CaptureOutput>")]
    pub capture_output: Option<Spanned<CaptureOutput>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub capture_format: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<OnFailure>")]
    pub on_failure: Option<Spanned<OnFailure>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub working_dir: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, Scalar>>")]
    pub env: Option<BTreeMap<String, Spanned<Scalar>>>,
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub commit_required: Option<Spanned<bool>>,
    /// `on_failure` (or a step with one): the step still fails after its handlers
    /// (default false).
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub fail_workflow: Option<Spanned<bool>>,
    /// `on_failure` (or a step with one): attempts of the failed command, the handlers
    /// running after each failed one (default 1: no retry).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub max_attempts: Option<Spanned<u32>>,
    /// Prodigy's other name of `max_attempts`.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub max_retries: Option<Spanned<u32>>,
    /// `on_failure` only: Prodigy's deprecated flag; accepted, `max_attempts` decides.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub retry_original: Option<Spanned<bool>>,
    /// `on_failure` only: accepted (a failed handler always fails the step in runner).
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub handler_failure_fatal: Option<Spanned<bool>>,
    /// `on_failure` only: `recovery`, `fallback`, `cleanup` or `custom`; accepted, no effect.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub strategy: Option<Spanned<String>>,
    /// `on_failure` only: the handler commands (strings or steps).
    #[serde(default)]
    #[schemars(with = "Option<Vec<HandlerEntry>>")]
    pub commands: Option<Spanned<Vec<Spanned<HandlerEntry>>>>,
    /// A handler only: its failure does not count (the next handler runs).
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub continue_on_error: Option<Spanned<bool>>,
    /// Prodigy: a Claude command (`/command args`), run as
    /// `claude --print --dangerously-skip-permissions "<command>"`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub claude: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(skip)]
    pub goal_seek: ProdigyOnly,
    #[serde(default)]
    #[schemars(skip)]
    pub foreach: ProdigyOnly,
    /// Prodigy: check the step's result, and complete it while it is below a threshold.
    #[serde(default)]
    #[schemars(with = "Option<super::raw_validation::RawValidation>")]
    pub validate: Option<Spanned<super::raw_validation::RawValidation>>,
    #[serde(default)]
    #[schemars(skip)]
    pub test: ProdigyOnly,
    #[serde(default)]
    #[schemars(skip)]
    pub analyze: ProdigyOnly,
    /// Prodigy: write a file (atomically).
    #[serde(default)]
    #[schemars(with = "Option<RawWriteFile>")]
    pub write_file: Option<Spanned<RawWriteFile>>,
    #[serde(default)]
    #[schemars(skip)]
    pub when: ProdigyOnly,
    #[serde(default)]
    #[schemars(skip)]
    pub on_success: ProdigyOnly,
}

/// Prodigy's `write_file:` step.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWriteFile {
    /// The file, relative to the step's working directory (`${...}` allowed).
    #[schemars(with = "String")]
    pub path: Spanned<String>,
    /// What to write (`${...}` allowed).
    #[schemars(with = "String")]
    pub content: Spanned<String>,
    /// `text` (default), `json` (checked, pretty-printed) or `yaml` (checked).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub format: Option<Spanned<String>>,
    /// Octal permission bits (default `"0644"`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub mode: Option<Spanned<String>>,
    /// Create missing parent directories (default false).
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub create_dirs: Option<Spanned<bool>>,
}

/// `map.input`: a bare string (file if it exists, else a command) or an explicit form.
#[derive(Debug)]
pub enum RawInput {
    Bare(String),
    File(String),
    Command(String),
}

/// A list of steps, or Prodigy's `{ commands: [...] }` wrapper (with its setup-only keys).
#[derive(Debug, Default)]
pub struct Steps {
    pub steps: Vec<Spanned<RawStep>>,
    /// Prodigy setup: a timeout for the whole phase.
    pub timeout: Option<DurationValue>,
    /// Prodigy setup: `capture_outputs: {NAME: step_index}`.
    pub capture_outputs: BTreeMap<String, usize>,
}

/// `on_failure:`: `true`/`false` (Prodigy: ignore the failure, or not), a command (Prodigy;
/// one starting with `/` is a Claude command), a list of steps or commands, or one step
/// (Prodigy), which may carry `fail_workflow`, `max_attempts` and `commands`.
#[derive(Debug)]
pub enum OnFailure {
    Flag(bool),
    Command(String),
    List(Vec<Spanned<HandlerEntry>>),
    One(Box<RawStep>),
}

/// One handler in a list: a command (Prodigy) or a step.
#[derive(Debug)]
pub enum HandlerEntry {
    Command(String),
    Step(Box<RawStep>),
}

/// Prodigy's `error_collection`: `aggregate`, `immediate`, `batched`, or `{batched: {size: N}}`.
#[derive(Debug, Clone)]
pub enum ErrorCollection {
    Name(String),
    Batched { size: u64 },
}

#[derive(Debug, Clone)]
pub enum CaptureOutput {
    Flag(bool),
    Name(String),
}

/// A duration written as humantime text ("2m", "1h 30s") or as a number of seconds.
#[derive(Debug, Clone)]
pub enum DurationValue {
    Seconds(f64),
    Text(String),
}

/// A YAML scalar kept as text (env values, `max_parallel` which may be `"${env.N}"`).
#[derive(Debug, Clone)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DurationValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a duration such as \"30s\", \"5m\", \"1h 30m\", or a number of seconds",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationValue, E> {
                Ok(DurationValue::Text(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationValue, E> {
                Ok(DurationValue::Seconds(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationValue, E> {
                Ok(DurationValue::Seconds(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DurationValue, E> {
                Ok(DurationValue::Seconds(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for CaptureOutput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CaptureOutput;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false, or a variable name")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<CaptureOutput, E> {
                Ok(CaptureOutput::Flag(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CaptureOutput, E> {
                Ok(CaptureOutput::Name(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for RawInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Explicit {
            #[serde(default)]
            file: Option<String>,
            #[serde(default)]
            command: Option<String>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawInput;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a file path or command string, { file: PATH } or { command: CMD }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawInput, E> {
                Ok(RawInput::Bare(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawInput, A::Error> {
                let e = Explicit::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (e.file, e.command) {
                    (Some(f), None) => Ok(RawInput::File(f)),
                    (None, Some(c)) => Ok(RawInput::Command(c)),
                    _ => Err(de::Error::custom(
                        "map.input takes exactly one of `file:` or `command:`",
                    )),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Steps {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Wrapped {
            commands: Vec<Spanned<RawStep>>,
            #[serde(default)]
            timeout: Option<DurationValue>,
            #[serde(default)]
            capture_outputs: BTreeMap<String, usize>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Steps;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of steps (or Prodigy's { commands: [...] })")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Steps, E> {
                Ok(Steps::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Steps, A::Error> {
                let steps = Vec::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(Steps {
                    steps,
                    ..Steps::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Steps, A::Error> {
                let w = Wrapped::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Steps {
                    steps: w.commands,
                    timeout: w.timeout,
                    capture_outputs: w.capture_outputs,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for OnFailure {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V(PhantomData<()>);
        impl<'de> Visitor<'de> for V {
            type Value = OnFailure;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false, a command, a step, or a list of steps or commands")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<OnFailure, E> {
                Ok(OnFailure::Flag(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OnFailure, E> {
                Ok(OnFailure::Command(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<OnFailure, A::Error> {
                Ok(OnFailure::List(Vec::deserialize(
                    de::value::SeqAccessDeserializer::new(seq),
                )?))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<OnFailure, A::Error> {
                Ok(OnFailure::One(Box::new(RawStep::deserialize(
                    de::value::MapAccessDeserializer::new(map),
                )?)))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<'de> Deserialize<'de> for HandlerEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HandlerEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command or a step")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HandlerEntry, E> {
                Ok(HandlerEntry::Command(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<HandlerEntry, A::Error> {
                Ok(HandlerEntry::Step(Box::new(RawStep::deserialize(
                    de::value::MapAccessDeserializer::new(map),
                )?)))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for ErrorCollection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Size {
            size: u64,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Batched {
            batched: Size,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ErrorCollection;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("aggregate, immediate, batched, or { batched: { size: N } }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ErrorCollection, E> {
                Ok(ErrorCollection::Name(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ErrorCollection, A::Error> {
                let b = Batched::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ErrorCollection::Batched {
                    size: b.batched.size,
                })
            }
        }
        d.deserialize_any(V)
    }
}

// JSON Schema (`runner schema`) of the types with hand-written `Deserialize` impls: each
// describes exactly the shapes its visitor accepts.

/// A `JsonSchema` impl whose schema is a fixed JSON literal.
macro_rules! fixed_schema {
    ($ty:ty, $name:literal, $schema:tt) => {
        impl JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!($schema)
            }
        }
    };
}

fixed_schema!(Scalar, "Scalar", {
    "description": "A string, number or boolean (used as text)",
    "type": ["string", "number", "boolean"]
});

fixed_schema!(DurationValue, "Duration", {
    "description": "A duration such as \"30s\", \"5m\", \"1h 30m\", or a number of seconds",
    "type": ["string", "number"]
});

fixed_schema!(ErrorCollection, "ErrorCollection", {
    "description": "Prodigy: how item errors are reported (accepted, no effect): aggregate, immediate, batched, or { batched: { size: N } }",
    "oneOf": [
        { "type": "string", "enum": ["aggregate", "immediate", "batched"] },
        {
            "type": "object",
            "properties": {
                "batched": {
                    "type": "object",
                    "properties": { "size": { "type": "integer", "minimum": 1 } },
                    "required": ["size"],
                    "additionalProperties": false
                }
            },
            "required": ["batched"],
            "additionalProperties": false
        }
    ]
});

fixed_schema!(CaptureOutput, "CaptureOutput", {
    "description": "Prodigy: true, false, or a variable name",
    "type": ["boolean", "string"]
});

/// Schema only: the values `map.input_format` accepts (validated in [`super::validate`]).
pub struct InputFormatName;

fixed_schema!(InputFormatName, "InputFormat", {
    "description": "How the items input is read: json (one JSON document), jsonl (one JSON value per line), lines (one string per line), or auto (sniffed; text starting with [ or { is JSON). Default: json for .json files, jsonl for .jsonl/.ndjson files, else auto",
    "type": "string",
    "enum": ["json", "jsonl", "lines", "auto"]
});

fixed_schema!(RawInput, "Input", {
    "description": "Where the items come from: a path of a JSON/JSONL file (relative to the workflow file) or, if no such file exists, a shell command; or explicitly { file: PATH } or { command: CMD }",
    "oneOf": [
        { "type": "string" },
        {
            "type": "object",
            "properties": { "file": { "type": "string" } },
            "required": ["file"],
            "additionalProperties": false
        },
        {
            "type": "object",
            "properties": { "command": { "type": "string" } },
            "required": ["command"],
            "additionalProperties": false
        }
    ]
});

impl JsonSchema for Steps {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Steps".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let step = generator.subschema_for::<RawStep>();
        let duration = generator.subschema_for::<DurationValue>();
        schemars::json_schema!({
            "description": "A list of steps, or Prodigy's { commands: [...] }",
            "anyOf": [
                { "type": "null" },
                { "type": "array", "items": step },
                {
                    "type": "object",
                    "properties": {
                        "commands": { "type": "array", "items": step },
                        "timeout": duration,
                        "capture_outputs": {
                            "type": "object",
                            "additionalProperties": { "type": "integer", "minimum": 0 }
                        }
                    },
                    "required": ["commands"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

impl JsonSchema for OnFailure {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OnFailure".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let step = generator.subschema_for::<RawStep>();
        schemars::json_schema!({
            "description": "What runs when a step fails: true/false (Prodigy: ignore the failure or not), a command, one step (which may carry fail_workflow, max_attempts, commands), or a list of steps or commands",
            "anyOf": [
                { "type": "boolean" },
                { "type": "string" },
                { "type": "array", "items": { "anyOf": [ { "type": "string" }, step ] } },
                step
            ]
        })
    }
}

impl JsonSchema for HandlerEntry {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HandlerEntry".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let step = generator.subschema_for::<RawStep>();
        schemars::json_schema!({
            "description": "An on_failure handler: a command, or a step",
            "anyOf": [ { "type": "string" }, step ]
        })
    }
}
