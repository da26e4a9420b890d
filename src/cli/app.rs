//! Entry point of the command line: parse, set up logging, run the command, map the
//! outcome to an exit code. The only place besides `cli/*` commands that prints.

use clap::Parser;

use crate::cli::args::{Cli, Command};
use crate::cli::exit::code_for;

/// Run the CLI with the process arguments; returns the exit code.
pub fn main_entry() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                crate::error::exit_code::USAGE
            } else {
                0
            };
            let _ = e.print();
            return code;
        }
    };
    init_tracing(&cli);
    let result = match &cli.command {
        Command::Run(a) => crate::cli::run::run(&cli.global, a),
        Command::Resume(a) => crate::cli::resume::resume(&cli.global, a),
        Command::Status(a) => crate::cli::status::status(&cli.global, a),
        Command::Dlq(c) => crate::cli::dlq::dlq(&cli.global, c),
        Command::Validate(a) => crate::cli::validate::validate(a),
        Command::Pause(a) => crate::cli::pause::pause(&cli.global, a),
        Command::Stop(a) => crate::cli::stop::stop(&cli.global, a),
        Command::Logs(a) => crate::cli::logs::logs(&cli.global, a),
        Command::Report(a) => crate::cli::report::report(&cli.global, a),
        Command::Clean(a) => crate::cli::clean::clean(&cli.global, a),
        Command::Schedule(a) => crate::cli::schedule::schedule(&cli.global, a),
        Command::Health(a) => crate::cli::health::health(&cli.global, a),
        Command::Completions(a) => crate::cli::ship::completions(a.shell),
        Command::Man => crate::cli::ship::man(),
        Command::Schema => crate::cli::ship::schema(),
        Command::Worker(a) => crate::cli::worker::worker(&cli.global, a),
        Command::Workers(a) => crate::cli::workers::workers(a),
        Command::Postgres(c) => crate::cli::postgres::postgres(c),
        Command::Watchdog => Ok(crate::engine::process::watchdog::watchdog_main()),
        Command::ExecItem(a) => crate::cli::exec_item::exec_item(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            match e.downcast_ref::<crate::workflow::error::WorkflowError>() {
                // Several problems of a workflow file: one line each.
                Some(w @ crate::workflow::error::WorkflowError::Many(_)) => {
                    for one in w.all() {
                        crate::cli::out::err_line(&format!("runner: {one}"));
                    }
                }
                _ => crate::cli::out::err_line(&format!("runner: {e:#}")),
            }
            code_for(&e)
        }
    }
}

fn init_tracing(cli: &Cli) {
    let default = match cli.global.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let color = crate::cli::reporting::use_color(&cli.global);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .event_format(crate::cli::log_format::LogFormat { color })
        .try_init();
}
