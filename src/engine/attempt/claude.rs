//! Prodigy's `claude:` step as a command line: `claude --print
//! --dangerously-skip-permissions <command>`, the command one argument (never parsed by a
//! shell), the program overridable with `RUNNER_CLAUDE`.

/// The variable naming the Claude program (default `claude`, looked up in `PATH`).
pub const PROGRAM_VAR: &str = "RUNNER_CLAUDE";

/// Prodigy's flags, in its order.
const FLAGS: [&str; 2] = ["--print", "--dangerously-skip-permissions"];

/// The argument vector of a Claude step. `env` is the step's environment (workflow `env`,
/// step `env`), which may set `RUNNER_CLAUDE`, else the runner's own environment does.
pub fn argv(command: &str, env: &[(String, String)]) -> Vec<String> {
    let program = env
        .iter()
        .rev()
        .find(|(k, _)| k == PROGRAM_VAR)
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var(PROGRAM_VAR).ok())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "claude".to_owned());
    let mut argv = vec![program];
    argv.extend(FLAGS.iter().map(|f| (*f).to_owned()));
    argv.push(command.to_owned());
    argv
}

/// What Prodigy sets for the commands it runs (Claude's commands check it).
pub fn env() -> (String, String) {
    ("PRODIGY_AUTOMATION".to_owned(), "true".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_one_argument_and_the_program_can_be_replaced() {
        let env = vec![(PROGRAM_VAR.to_owned(), "/opt/fake".to_owned())];
        assert_eq!(
            argv("/fix a; rm -rf 'b'", &env),
            [
                "/opt/fake",
                "--print",
                "--dangerously-skip-permissions",
                "/fix a; rm -rf 'b'"
            ]
        );
    }
}
