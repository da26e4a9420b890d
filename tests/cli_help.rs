//! Every visible argument and command of the CLI has a help text (`--help`, the man page
//! and shell completions show them).

use clap::CommandFactory;
use runner::cli::args::Cli;

fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
    for a in cmd.get_arguments() {
        let id = a.get_id().as_str();
        if a.is_hide_set() || id == "help" || id == "version" {
            continue;
        }
        let empty = |h: Option<&clap::builder::StyledStr>| {
            h.is_none_or(|s| s.to_string().trim().is_empty())
        };
        if empty(a.get_help()) && empty(a.get_long_help()) {
            missing.push(format!("argument {id} of `{path}`"));
        }
    }
    for sub in cmd.get_subcommands() {
        // clap's own `help` subcommand is documented by clap.
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let sub_path = format!("{path} {}", sub.get_name());
        if sub.get_about().is_none() {
            missing.push(format!("command `{sub_path}`"));
        }
        walk(sub, &sub_path, missing);
    }
}

#[test]
fn every_visible_argument_has_a_help_text() {
    let mut cmd = Cli::command();
    cmd.build();
    let mut missing = Vec::new();
    walk(&cmd, "runner", &mut missing);
    assert!(
        missing.is_empty(),
        "without help text:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_walk_sees_subcommand_positionals() {
    // Guard against a walk that checks nothing: `dlq list` has a JOB positional with help.
    let mut cmd = Cli::command();
    cmd.build();
    let list = cmd
        .find_subcommand("dlq")
        .and_then(|d| d.find_subcommand("list"))
        .expect("dlq list");
    let job = list
        .get_arguments()
        .find(|a| a.get_id() == "job")
        .expect("JOB argument");
    assert!(job.is_positional());
    assert_eq!(
        job.get_help().map(|h| h.to_string()).as_deref(),
        Some("The job id")
    );
}
