//! Command-line syntax (clap). Raw flags only; commands turn them into settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "runner",
    version,
    about = "Run MapReduce workflows of shell steps, crash-safe and resumable"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Where jobs are kept
    #[arg(
        long,
        global = true,
        env = "RUNNER_STATE_DIR",
        default_value = ".runner",
        value_name = "DIR"
    )]
    pub state_dir: PathBuf,
    /// More output (repeatable)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors and the final summary
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Colour in human output (honours NO_COLOR)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a workflow, create a job and run setup, map and reduce
    Run(RunArgs),
    /// Continue an interrupted or failed job
    Resume(ResumeArgs),
    /// Show jobs, or one job in detail
    Status(StatusArgs),
    /// Inspect and act on a job's dead-letter queue
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Check a workflow file without running it
    Validate(ValidateArgs),
    /// Stop starting new items in a running job (items in flight finish)
    Pause(PauseArgs),
    /// Stop a running job gracefully (it exits 143 and can be resumed)
    Stop(StopArgs),
    /// Show the output of setup/reduce steps, or of one item's attempts
    Logs(LogsArgs),
    /// Write a job's report: one self-contained HTML page (or JSON) with its timeline,
    /// distributions, slowest and heaviest items and DLQ
    Report(ReportCmdArgs),
    /// Remove finished (with --all-states also interrupted) job directories; never a running one
    Clean(CleanArgs),
    /// Start workflows and pipelines on cron expressions, intervals and dates (a foreground
    /// service), or list the schedules, or fire what is due once
    Schedule(ScheduleArgs),
    /// Check the state directory: stale jobs, stuck items, error rates (exit 1 if unhealthy)
    Health(HealthArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout
    Man,
    /// Print the JSON Schema of the workflow file on stdout
    Schema,
    /// Run map items of jobs on the PostgreSQL executor (any number, on any machines)
    Worker(WorkerArgs),
    /// List the workers registered in PostgreSQL
    Workers(WorkersArgs),
    /// Administer the PostgreSQL executor's database
    #[command(subcommand)]
    Postgres(PostgresCommand),
    /// Internal: the watchdog that kills a dead runner's process groups
    #[command(name = "__watchdog", hide = true)]
    Watchdog,
    /// Internal: run one array task of the Slurm backend (a batch of a job's items) on a node
    #[command(name = "exec-item", hide = true)]
    ExecItem(ExecItemArgs),
}

/// `runner exec-item`: the task is the submission's batch at `$SLURM_ARRAY_TASK_ID`.
#[derive(Debug, Args)]
pub struct ExecItemArgs {
    /// The job directory (on a filesystem shared with the coordinator)
    #[arg(long, value_name = "DIR")]
    pub job_dir: PathBuf,
    /// The submission number (`slurm/sub-<N>.json`)
    #[arg(long, value_name = "N")]
    pub submission: u64,
    /// The array index (default: $SLURM_ARRAY_TASK_ID)
    #[arg(long, value_name = "I")]
    pub task: Option<usize>,
}

/// `runner worker`: claims and runs items of jobs queued in PostgreSQL
/// (`RUNNER_POSTGRES_URL`) until SIGTERM/SIGINT.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Items run at once (default: the number of CPUs)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub slots: Option<u32>,
    /// How long a claim holds without a heartbeat; then its item goes back to the queue
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub lease: std::time::Duration,
    /// Time between heartbeats (at most half the lease)
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = humantime::parse_duration)]
    pub heartbeat: std::time::Duration,
    /// How often to look at the queue should a notification be missed
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub poll: std::time::Duration,
    /// Bytes of each item's stdout and stderr (their ends) sent to the coordinator's logs
    #[arg(long, value_name = "BYTES", default_value_t = 65536)]
    pub tail_bytes: usize,
    /// After SIGTERM/SIGINT, how long running items may finish before they are handed back
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub grace: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct WorkersArgs {
    /// One JSON document on stdout (an array of workers)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PostgresCommand {
    /// Create or upgrade the runner schema (idempotent; run once per database and release)
    Migrate,
}

/// `--executor`: where the map's items run.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ExecutorArg {
    Local,
    Slurm,
    Postgres,
}

impl From<ExecutorArg> for crate::workflow::model::ExecutorKind {
    fn from(e: ExecutorArg) -> Self {
        match e {
            ExecutorArg::Local => crate::workflow::model::ExecutorKind::Local,
            ExecutorArg::Slurm => crate::workflow::model::ExecutorKind::Slurm,
            ExecutorArg::Postgres => crate::workflow::model::ExecutorKind::Postgres,
        }
    }
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// How a running job reacts to SIGINT/SIGTERM.
#[derive(Debug, Args, Clone)]
pub struct InterruptArgs {
    /// After the first SIGINT/SIGTERM (forwarded to the steps in flight), how long they get
    /// before they are killed
    #[arg(long, value_name = "DURATION", env = "RUNNER_KILL_GRACE", default_value = "2s", value_parser = humantime::parse_duration)]
    pub kill_grace: std::time::Duration,
}

/// Reports a job run writes besides its human output: NDJSON, JUnit XML, metrics.
#[derive(Debug, Args, Default, Clone)]
pub struct ReportArgs {
    /// NDJSON events on stdout
    #[arg(long)]
    pub json: bool,
    /// Write a JUnit XML report (one testcase per item finished in this run) to FILE
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write Prometheus textfile metrics to PATH (at the end, and every 10s while running)
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The job id
    pub job: String,
    /// Why (shown by `status`)
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// The job id
    pub job: String,
    /// How long items in flight may go on before their process groups are killed
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub grace: std::time::Duration,
    /// Return at once instead of waiting for the job to exit
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The job id
    pub job: String,
    /// An item id (without it: the setup and reduce steps)
    pub item: Option<String>,
    /// Keep printing new output while the job runs
    #[arg(short, long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Only jobs last updated longer ago than this (e.g. 7d, 12h)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub older_than: Option<std::time::Duration>,
    /// Only completed jobs (not failed ones)
    #[arg(long, conflicts_with = "all_states")]
    pub completed: bool,
    /// Also interrupted jobs (never a locked one); requires --older-than
    #[arg(long, requires = "older_than")]
    pub all_states: bool,
    /// Say what would be removed and freed, remove nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The workflow file
    pub workflow: PathBuf,
    /// Use this job id instead of a generated one
    #[arg(long, value_name = "ID")]
    pub job_id: Option<String>,
    /// Items in flight at once (overrides map.max_parallel)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: Option<u32>,
    /// Override a workflow env value (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the selected items and their commands; run nothing, write no state
    #[arg(long)]
    pub dry_run: bool,
    /// Where the map's items run (overrides the workflow's `executor:`)
    #[arg(long, value_enum, value_name = "EXECUTOR")]
    pub executor: Option<ExecutorArg>,
    /// Git isolation: after reduce, merge the job's branch into the branch the job started
    /// on (also PRODIGY_AUTO_MERGE=true)
    #[arg(long, short = 'y', visible_alias = "yes")]
    pub merge: bool,
    #[command(flatten)]
    pub interrupt: InterruptArgs,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The job id
    pub job: String,
    /// Items in flight at once
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: Option<u32>,
    /// Only run items that never finished (leave failed and DLQ items alone)
    #[arg(long)]
    pub pending_only: bool,
    /// Resume even though the workflow file changed since the job started
    #[arg(long)]
    pub force: bool,
    /// Say what a resume would do (items by source, workflow change, lock holder, leftover
    /// process groups); run and write nothing. With --json: one JSON document
    #[arg(long, conflicts_with_all = ["junit", "metrics_file"])]
    pub dry_run: bool,
    /// Where the map's items run (overrides the workflow's `executor:`)
    #[arg(long, value_enum, value_name = "EXECUTOR")]
    pub executor: Option<ExecutorArg>,
    /// Git isolation: after reduce, merge the job's branch into the branch the job started
    /// on (also PRODIGY_AUTO_MERGE=true)
    #[arg(long, short = 'y', visible_alias = "yes")]
    pub merge: bool,
    #[command(flatten)]
    pub interrupt: InterruptArgs,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A job id (without it: a table of all jobs)
    pub job: Option<String>,
    /// One JSON document on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportCmdArgs {
    /// The job id (or a pipeline id: one row per job, then each job)
    pub job: String,
    /// Where to write the report (default: report.html; with --json: stdout)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The report's data as one JSON document instead of HTML
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List the DLQ entries of a job
    List {
        /// The job id
        job: String,
        /// One JSON document on stdout (an array of entries)
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        filter: DlqFilterArgs,
    },
    /// Show one entry with every attempt
    Show {
        /// The job id
        job: String,
        /// The item id
        item: String,
    },
    /// Run DLQ items again with the job's template
    Retry {
        /// The job id
        job: String,
        /// Only these items (repeatable; default: all)
        #[arg(long = "item", value_name = "ID")]
        items: Vec<String>,
        #[command(flatten)]
        filter: DlqFilterArgs,
        /// Items in flight at once
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        max_parallel: Option<u32>,
        /// Where the items run (overrides the workflow's `executor:`)
        #[arg(long, value_enum, value_name = "EXECUTOR")]
        executor: Option<ExecutorArg>,
        #[command(flatten)]
        interrupt: InterruptArgs,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Remove entries without running them
    Purge {
        /// The job id
        job: String,
        /// Only these items (repeatable; default: all)
        #[arg(long = "item", value_name = "ID")]
        items: Vec<String>,
    },
}

/// `--class` / `--since`: which DLQ entries `dlq list` and `dlq retry` take.
#[derive(Debug, Args, Clone, Default)]
pub struct DlqFilterArgs {
    /// Only entries whose last failure has this class (comma-separated or repeated)
    #[arg(
        long = "class",
        value_name = "CLASS",
        value_delimiter = ',',
        value_parser = clap::builder::PossibleValuesParser::new(crate::state::records::Failure::CLASSES)
    )]
    pub classes: Vec<String>,
    /// Only entries whose last failure is at most this old (e.g. 30m, 2h)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub since: Option<std::time::Duration>,
}

impl From<&DlqFilterArgs> for crate::state::dlq_select::DlqFilter {
    fn from(a: &DlqFilterArgs) -> Self {
        crate::state::dlq_select::DlqFilter {
            classes: a.classes.clone(),
            since: a.since,
        }
    }
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The workflow file
    pub workflow: PathBuf,
}

/// `runner schedule FILE` (the service) or `runner schedule list|run-due FILE`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    pub command: Option<ScheduleCommand>,
    /// The schedules file: run the service until SIGTERM/SIGINT
    #[arg(required = true, value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub now: NowArg,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Each schedule's next fire times, last run and its outcome
    List {
        /// The schedules file
        file: PathBuf,
        /// One JSON document on stdout
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        now: NowArg,
    },
    /// Fire whatever is due now, wait for those runs, exit (for cron or a CI timer)
    RunDue {
        /// The schedules file
        file: PathBuf,
        #[command(flatten)]
        now: NowArg,
    },
}

/// Tests only: the clock reads this instant when the command starts.
#[derive(Debug, Args, Clone, Default)]
pub struct NowArg {
    #[arg(long = "now", hide = true, value_name = "RFC3339")]
    pub now: Option<String>,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// One JSON document on stdout
    #[arg(long)]
    pub json: bool,
    /// A running job whose heartbeat is older than this is stale
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub stale_after: std::time::Duration,
    /// Jobs updated within this window count for error rates
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub window: std::time::Duration,
    /// Unhealthy when a workflow's failed / finished items exceed this fraction
    #[arg(long, value_name = "FRACTION", default_value_t = 0.2)]
    pub max_error_rate: f64,
    /// Error rates count once a workflow has finished at least this many items
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub min_items: usize,
}
