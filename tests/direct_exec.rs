//! Simple commands run without `/bin/sh` (docs/workflow.md §11): they must behave exactly as
//! the shell would have run them, including when they cannot be started.
mod common;
#[path = "common/crash.rs"]
mod crash;

use common::*;
use crash::dlq_list;

fn job(p: &Project, steps: &str) -> std::process::Output {
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        &format!("name: direct\nmap:\n  input: items.json\n  agent_template:\n{steps}"),
    );
    p.run(&["run", "wf.yml", "--job-id", "j"])
}

#[test]
fn quoted_words_path_and_pwd_are_the_shells() {
    let p = Project::new();
    std::fs::create_dir_all(p.path().join("bin")).unwrap();
    // A program found through a PATH set by the workflow, printing its arguments and PWD.
    p.executable(
        "bin/show-args",
        "#!/bin/sh\nexec > out.txt\nfor a in \"$@\"; do printf '[%s]' \"$a\"; done\necho\necho \"$PWD\"\n",
    );
    let path = format!(
        "{}:{}",
        p.path().join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let out = job(
        &p,
        &format!(
            "    - shell: \"show-args plain 'two words' \\\"dq #\\\" e'f g'h ''\"\n      \
             env: {{ PATH: \"{path}\" }}\n"
        ),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let cwd = std::fs::canonicalize(p.path()).unwrap();
    assert_eq!(
        p.read("out.txt"),
        format!("[plain][two words][dq #][ef gh][]\n{}\n", cwd.display())
    );
}

#[test]
fn a_command_that_cannot_start_fails_as_under_the_shell() {
    let p = Project::new();
    // Not found: the shell's message and exit 127 (failure class `spawn`).
    p.executable("no-shebang", "echo ran-by-sh > ran.txt\n");
    let out = job(&p, "    - shell: \"./no-shebang\"\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        p.read("ran.txt"),
        "ran-by-sh\n",
        "a script without #! runs under sh"
    );

    let p = Project::new();
    let out = job(&p, "    - shell: \"surely-not-a-command-xyz arg\"\n");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let dlq = dlq_list(&p, "j");
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    let show = p.run(&["dlq", "show", "j", "a", "--json"]);
    let text = format!("{} {}", dlq[0], String::from_utf8_lossy(&show.stdout));
    assert!(text.contains("spawn"), "{text}");
    assert!(
        text.contains("surely-not-a-command-xyz") && text.contains("not found"),
        "the shell's own message is kept: {text}"
    );
}
