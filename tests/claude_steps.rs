//! Issue 15, Claude steps: `claude: "/command args"` runs
//! `claude --print --dangerously-skip-permissions "<command>"` (the command one argument,
//! never parsed by a shell; the program from `RUNNER_CLAUDE`, else `claude` on `PATH`), in
//! the step's directory, with captures, timeouts, process-group cleanup and `on_failure`
//! handlers like shell steps. A stand-in `claude` script records its arguments.
mod common;
#[path = "common/extra.rs"]
mod extra;
use std::time::{Duration, Instant};

use common::*;
use extra::*;

/// A stand-in `claude` in `bin/`: writes one line per argument to `calls/<pid>`, then its
/// directory and `PRODIGY_AUTOMATION`, prints `did: <last argument>`, and runs `$FAKE_THEN`.
fn fake_claude(p: &Project) {
    p.executable(
        "bin/claude",
        r#"#!/bin/sh
mkdir -p "$CALLS"
f="$CALLS/$$"
for a in "$@"; do printf 'arg:%s\n' "$a" >> "$f"; done
printf 'pwd:%s\nauto:%s\n' "$(pwd)" "$PRODIGY_AUTOMATION" >> "$f"
for last in "$@"; do :; done
echo "did: $last"
if [ -n "$FAKE_THEN" ]; then eval "$FAKE_THEN"; fi
"#,
    );
}

/// `runner run wf.yml` with the stand-in first on `PATH`.
fn run_with_fake(p: &Project, extra_env: &[(&str, &str)], want: i32) -> std::process::Output {
    let path = format!(
        "{}:{}",
        p.path().join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let mut c = p.cmd();
    c.args(["run", "wf.yml"])
        .env("PATH", path)
        .env("CALLS", p.path().join("calls"))
        .env_remove("RUNNER_CLAUDE");
    for (k, v) in extra_env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert_eq!(code(&out), want, "stderr:\n{}", stderr(&out));
    out
}

/// Every recorded call: its lines.
fn calls(p: &Project) -> Vec<Vec<String>> {
    let mut v: Vec<Vec<String>> = std::fs::read_dir(p.path().join("calls"))
        .map(|d| {
            d.map(|e| {
                std::fs::read_to_string(e.unwrap().path())
                    .unwrap()
                    .lines()
                    .map(String::from)
                    .collect()
            })
            .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_map_claude_step_passes_the_interpolated_command_as_one_argument() {
    let p = Project::new();
    fake_claude(&p);
    p.file(
        "items.json",
        r#"[{"id":"a","path":"src/x.rs; touch pwned","note":"it's $(touch pwned2)"}]"#,
    );
    p.file(
        "wf.yml",
        r#"name: cl
mode: mapreduce
map:
  input: items.json
  agent_template:
    - claude: "/fix ${item.path} '${item.note}'"
      capture: said
    - shell: "echo '${said}' > said-${item.id}.txt"
"#,
    );
    run_with_fake(&p, &[], 0);
    let dir = std::fs::canonicalize(p.path()).unwrap();
    assert_eq!(
        calls(&p),
        vec![vec![
            "arg:--print".to_string(),
            "arg:--dangerously-skip-permissions".into(),
            "arg:/fix src/x.rs; touch pwned 'it's $(touch pwned2)'".into(),
            format!("pwd:{}", dir.display()),
            "auto:true".into(),
        ]]
    );
    assert!(!p.path().join("pwned").exists() && !p.path().join("pwned2").exists());
    assert_eq!(
        p.read("said-a.txt").trim(),
        "did: /fix src/x.rs; touch pwned 'it's $(touch pwned2)'"
    );
}

#[test]
fn runner_claude_names_the_program_in_setup_and_reduce_and_working_dir_applies() {
    let p = Project::new();
    fake_claude(&p);
    std::fs::rename(
        p.path().join("bin/claude"),
        p.path().join("bin/other-agent"),
    )
    .unwrap();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file("sub/.keep", "");
    p.file(
        "wf.yml",
        r#"name: cl
mode: mapreduce
setup:
  - claude: "/prepare"
    working_dir: sub
map:
  input: items.json
  agent_template:
    - shell: "true"
reduce:
  - claude: "/summarize ${map.successful}"
"#,
    );
    let agent = p.path().join("bin/other-agent");
    run_with_fake(&p, &[("RUNNER_CLAUDE", agent.to_str().unwrap())], 0);
    let calls = calls(&p);
    let dir = std::fs::canonicalize(p.path()).unwrap();
    let lasts: Vec<(&str, &str)> = calls
        .iter()
        .map(|c| (c[2].as_str(), c[3].as_str()))
        .collect();
    let prepare = format!("pwd:{}", dir.join("sub").display());
    let summarize = format!("pwd:{}", dir.display());
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        lasts.contains(&("arg:/prepare", prepare.as_str())),
        "{calls:?}"
    );
    assert!(
        lasts.contains(&("arg:/summarize 1", summarize.as_str())),
        "{calls:?}"
    );
}

#[test]
fn a_claude_step_times_out_and_its_process_group_is_killed() {
    let p = Project::new();
    fake_claude(&p);
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        r#"name: cl
mode: mapreduce
setup:
  - claude: "/slow"
    timeout: 1
map:
  input: items.json
  agent_template:
    - shell: "true"
"#,
    );
    let started = Instant::now();
    let out = run_with_fake(
        &p,
        &[("FAKE_THEN", "sleep 300 & echo $! > bg.pid; sleep 300")],
        1,
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
    let pid = read_pid(&p, "bg.pid");
    wait_until(
        Duration::from_secs(10),
        "the background sleep is killed",
        || !pid_alive(pid),
    );
}

#[test]
fn a_claude_on_failure_handler_runs_and_forgives_the_step() {
    let p = Project::new();
    fake_claude(&p);
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        r#"name: cl
mode: mapreduce
map:
  input: items.json
  agent_template:
    - shell: "echo broken-${item.id}; exit 4"
      on_failure: "/debug ${shell.output}"
    - shell: "touch after-${item.id}"
"#,
    );
    run_with_fake(&p, &[], 0);
    let calls = calls(&p);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0][2], "arg:/debug broken-a");
    assert!(p.path().join("after-a").exists());
}

#[test]
fn a_missing_claude_program_fails_the_item_with_its_name() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        r#"name: cl
mode: mapreduce
setup:
  - claude: "/x"
map:
  input: items.json
  agent_template:
    - shell: "true"
"#,
    );
    let out = run_with_fake(&p, &[("RUNNER_CLAUDE", "/nonexistent/claude-x")], 1);
    assert!(
        stderr(&out).contains("cannot run /nonexistent/claude-x"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn validate_accepts_claude_steps_and_rejects_two_kinds_in_one_step() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "ok.yml",
        r#"name: cl
mode: mapreduce
map:
  input: items.json
  agent_template:
    - claude: "/fix ${item.id}"
      on_failure:
        claude: "/debug ${item.id}"
        max_attempts: 2
"#,
    );
    run_expect(&p, &["validate", "ok.yml"], 0);
    p.file(
        "bad.yml",
        r#"name: cl
mode: mapreduce
map:
  input: items.json
  agent_template:
    - shell: "true"
      claude: "/fix"
"#,
    );
    let out = run_expect(&p, &["validate", "bad.yml"], 2);
    assert!(
        stderr(&out)
            .contains("bad.yml:7:15: a step has one of `shell:`, `claude:` or `write_file:`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn claude_and_write_file_text_is_not_shell_parsed_so_placeholders_may_stand_anywhere() {
    let p = Project::new();
    fake_claude(&p);
    p.file("items.json", r#"[{"id":"a","name":"x y"}]"#);
    // Where a shell would misread a placeholder (inside `$(...)`, `$'...'`, after `>&`),
    // these texts are read by no shell: they are accepted and passed on as written.
    p.file(
        "wf.yml",
        r#"name: plain
map:
  input: items.json
  agent_template:
    - claude: "/explain $(${item.name}) $'${item.name}' 2>&${item.id}"
    - write_file:
        path: "out/${item.id}.txt"
        content: "`${item.name}` $(${item.id})"
        create_dirs: true
"#,
    );
    run_with_fake(&p, &[], 0);
    let call = &calls(&p)[0];
    assert!(
        call.contains(&"arg:/explain $(x y) $'x y' 2>&a".to_string()),
        "{call:?}"
    );
    assert_eq!(p.read("out/a.txt"), "`x y` $(a)");
}
