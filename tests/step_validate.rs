//! Issue 15, Prodigy's step-level `validate:`: after a step succeeds, its validation command
//! (shell or claude, or a list) yields Prodigy's JSON result on stdout or in `result_file`;
//! below `threshold` (default 100) the `on_incomplete` handlers run with `${validation.*}`
//! and validation repeats, up to `max_attempts` (default 2); then `fail_workflow` (default
//! true) fails the step, or the run goes on with a warning.
mod common;
#[path = "common/extra.rs"]
mod extra;

use common::*;
use extra::*;

const ONE: &str = r#"[{"id":"a"}]"#;

fn workflow(p: &Project, body: &str) {
    p.file("items.json", ONE);
    p.file("wf.yml", &format!("name: sv\nmode: mapreduce\n{body}"));
}

/// `check.sh`: records each run in `checks.log`; complete once `fixed` exists, else 50%
/// with a gap whose text has shell metacharacters.
fn checker(p: &Project) {
    p.executable(
        "check.sh",
        r#"#!/bin/sh
echo run >> checks.log
if [ -f fixed ]; then
  echo '{"completion_percentage": 100, "status": "complete"}'
else
  cat <<'EOF'
{"completion_percentage": 50, "status": "incomplete", "implemented": ["parser"],
 "missing": ["it's $(touch pwned)"],
 "gaps": {"auth": {"description": "no `auth`; $(touch pwned2)", "severity": "high"}}}
EOF
fi
"#,
    );
}

#[test]
fn complete_on_the_first_try_runs_no_handler() {
    let p = Project::new();
    workflow(
        &p,
        r#"map:
  input: items.json
  agent_template:
    - shell: "touch fixed"
      validate:
        shell: "./check.sh"
        on_incomplete:
          shell: "touch handler-ran"
    - shell: "touch after"
"#,
    );
    checker(&p);
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(lines(&p, "checks.log"), ["run"]);
    assert!(!p.path().join("handler-ran").exists());
    assert!(p.path().join("after").exists());
}

#[test]
fn incomplete_runs_on_incomplete_with_the_gaps_then_validates_again() {
    let p = Project::new();
    workflow(
        &p,
        r#"map:
  input: items.json
  agent_template:
    - shell: "echo step ${item.id}"
      validate:
        shell: "./check.sh"
        on_incomplete:
          shell: |
            printf '%s\n' ${validation.gaps} "${validation.missing}" ${validation.completion} ${validation.missing_count} ${validation.status} '${validation.implemented}' >> got.txt
            touch fixed
    - shell: "touch after"
"#,
    );
    checker(&p);
    run_expect(&p, &["run", "wf.yml", "--job-id", "g"], 0);
    assert_eq!(lines(&p, "checks.log"), ["run", "run"]);
    assert_eq!(
        lines(&p, "got.txt"),
        [
            r#"{"auth":{"description":"no `auth`; $(touch pwned2)","severity":"high"}}"#,
            r#"["it's $(touch pwned)"]"#,
            "50",
            "1",
            "incomplete",
            r#"["parser"]"#,
        ]
    );
    assert!(!p.path().join("pwned").exists() && !p.path().join("pwned2").exists());
    assert!(p.path().join("after").exists());
    // The validation output is in the item's log.
    let log = stdout(&run_expect(&p, &["logs", "g", "a"], 0));
    assert!(
        log.contains("step a") && log.contains("\"completion_percentage\": 50"),
        "{log}"
    );
}

#[test]
fn still_incomplete_after_max_attempts_fails_the_item_into_the_dlq() {
    let p = Project::new();
    workflow(
        &p,
        r#"map:
  input: items.json
  agent_template:
    - shell: "true"
      validate:
        shell: "./check.sh"
        threshold: 80
        on_incomplete:
          claude: "/never-called"
          shell: "echo fix >> fixes.log"
reduce:
  - shell: "echo ${map.failed} > failed.txt"
"#,
    );
    // Both `shell` and `claude` in on_incomplete: rejected first.
    let out = run_expect(&p, &["validate", "wf.yml"], 2);
    assert!(
        stderr(&out).contains("`on_incomplete` has one of"),
        "{}",
        stderr(&out)
    );
    let fixed = p
        .read("wf.yml")
        .replace("          claude: \"/never-called\"\n", "");
    p.file("wf.yml", &fixed);
    checker(&p);
    let out = run_expect(&p, &["run", "wf.yml", "--job-id", "s"], 1);
    // Prodigy's defaults: two rounds of handlers, each followed by validation.
    assert_eq!(lines(&p, "fixes.log"), ["fix", "fix"]);
    assert_eq!(lines(&p, "checks.log"), ["run", "run", "run"]);
    assert_eq!(p.read("failed.txt").trim(), "1");
    let err = stderr(&out);
    assert!(
        err.contains("50% complete, below the threshold of 80%") && err.contains("-> DLQ"),
        "{err}"
    );
    let dlq = run_expect(
        &p,
        &["dlq", "list", "s", "--json", "--class", "validation"],
        0,
    );
    let v: serde_json::Value = serde_json::from_slice(&dlq.stdout).unwrap();
    assert_eq!(v[0]["item_id"], "a", "{v}");
    assert_eq!(v[0]["failure_class"], "validation");
}

#[test]
fn fail_workflow_false_goes_on_with_a_warning() {
    let p = Project::new();
    workflow(
        &p,
        r#"setup:
  - shell: "true"
    validate:
      shell: "./check.sh"
      on_incomplete:
        shell: "echo setup-fix >> fixes.log"
        max_attempts: 1
        fail_workflow: false
  - shell: "touch setup-2"
map:
  input: items.json
  agent_template:
    - shell: "true"
      validate:
        shell: "./check.sh"
        on_incomplete:
          commands:
            - shell: "echo map-fix >> fixes.log"
            - "echo map-fix-2 >> fixes.log"
          fail_workflow: false
    - shell: "touch map-2"
"#,
    );
    checker(&p);
    let out = run_expect(&p, &["run", "wf.yml", "--job-id", "w"], 0);
    assert_eq!(
        lines(&p, "fixes.log"),
        ["setup-fix", "map-fix", "map-fix-2", "map-fix", "map-fix-2"]
    );
    assert!(p.path().join("setup-2").exists() && p.path().join("map-2").exists());
    let err = stderr(&out);
    assert!(
        err.contains("warning: setup step 1: validation 50% complete, below the threshold of 100%")
            && err.contains("with `fail_workflow: false` the step goes on"),
        "{err}"
    );
    // A map item's warning is in the run's output, naming the item, and in its log.
    assert!(
        err.contains("warning: item a: step 1: validation 50% complete"),
        "{err}"
    );
    let log = stdout(&run_expect(&p, &["logs", "w", "a"], 0));
    assert!(
        log.contains("runner: warning: step 1: validation 50% complete")
            && log.contains("after 2 of 2 on_incomplete attempts"),
        "{log}"
    );
}

#[test]
fn result_file_is_read_from_the_steps_directory() {
    let p = Project::new();
    std::fs::create_dir(p.path().join("sub")).unwrap();
    workflow(
        &p,
        r#"map:
  input: items.json
  agent_template:
    - shell: "true"
      working_dir: sub
      validate:
        shell: |
          echo '{"completion_percentage": 10, "status": "incomplete"}'
          echo '{"completion_percentage": 75, "status": "incomplete"}' > result-${item.id}.json
        result_file: "result-${item.id}.json"
        threshold: 70
        on_incomplete:
          shell: "touch ../handler-ran"
  # The `commands:` form reads only the result file.
    - shell: "true"
      validate:
        commands:
          - shell: "echo not-json"
          - shell: "echo '{\"completion_percentage\": 100, \"status\": \"complete\"}' > r2.json"
        result_file: r2.json
"#,
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert!(!p.path().join("handler-ran").exists());
    assert!(p.path().join("sub/result-a.json").exists());

    // A result file that is missing is 0%: the step fails.
    p.file(
        "wf.yml",
        r#"name: sv
map:
  input: items.json
  agent_template:
    - shell: "true"
      validate:
        shell: "true"
        result_file: missing.json
        on_incomplete:
          shell: 'printf "%s\n" "${validation.missing}" > why.txt'
          max_attempts: 1
"#,
    );
    run_expect(&p, &["run", "wf.yml"], 1);
    let why = p.read("why.txt");
    assert!(why.contains("cannot read missing.json"), "{why}");
}

#[test]
fn a_failing_or_malformed_validation_is_handled_as_prodigy_does() {
    let p = Project::new();
    workflow(
        &p,
        r#"setup:
  # Output that is not a result counts as complete (with a warning).
  - shell: "true"
    validate:
      shell: "echo '{\"completion_percentage\": 50}'"
      on_incomplete:
        shell: "touch malformed-handler"
  # A validation command that fails is 0%: `missing` says why.
  - shell: "true"
    validate:
      shell: "exit 3"
      threshold: 0
  - shell: "true"
    validate:
      - shell: "true"
      - shell: "exit 4"
    # No on_incomplete: a warning, and the step goes on.
map:
  input: items.json
  agent_template:
    - shell: "true"
      validate:
        shell: "exit 3"
        on_incomplete:
          shell: 'printf "%s\n" "${validation.missing}" ${validation.completion} > why.txt'
          max_attempts: 1
"#,
    );
    let out = run_expect(&p, &["run", "wf.yml"], 1);
    let err = stderr(&out);
    assert!(!p.path().join("malformed-handler").exists());
    assert!(
        err.contains("warning: setup step 1: the validation output is not a result")
            && err.contains("counted as complete"),
        "{err}"
    );
    // Threshold 0: a failed validation (0%) still passes.
    assert!(!err.contains("warning: setup step 2"), "{err}");
    assert!(
        err.contains("warning: setup step 3: validation 0% complete")
            && err.contains("validation command 2 exited with code 4"),
        "{err}"
    );
    assert_eq!(
        lines(&p, "why.txt"),
        [r#"["the validation command exited with code 3"]"#, "0"]
    );
}

#[test]
fn a_validation_failure_goes_through_the_steps_on_failure_and_retries() {
    let p = Project::new();
    workflow(
        &p,
        r#"map:
  input: items.json
  agent_template:
    - shell: "echo try >> tries.log"
      validate:
        shell: "./check.sh"
        on_incomplete:
          shell: "true"
          max_attempts: 1
      on_failure:
        shell: "touch fixed"
        max_attempts: 2
"#,
    );
    checker(&p);
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(lines(&p, "tries.log"), ["try", "try"]);
    // try 1: check, handler, check (incomplete: the step fails); on_failure fixes;
    // try 2: check (complete).
    assert_eq!(lines(&p, "checks.log"), ["run", "run", "run"]);
}

/// A stand-in `claude`: records its arguments in `claude.log`; `/validate` prints a result
/// (complete once `fixed` exists), `/complete` creates `fixed`.
fn fake_claude(p: &Project) -> String {
    p.executable("bin/claude",
        r#"#!/bin/sh
for last in "$@"; do :; done
printf '%s\n' "$last" >> claude.log
case "$last" in
  /validate*)
    if [ -f fixed ]; then echo '{"completion_percentage": 100, "status": "complete"}'
    else echo '{"completion_percentage": 20, "status": "incomplete", "gaps": {"g": {"description": "a \"b\" $c", "severity": "low"}}}'; fi ;;
  /complete*) touch fixed ;;
esac
"#,
    );
    format!(
        "{}:{}",
        p.path().join("bin").display(),
        std::env::var("PATH").unwrap()
    )
}

#[test]
fn claude_validation_and_claude_on_incomplete() {
    let p = Project::new();
    workflow(
        &p,
        r#"map:
  input: items.json
  agent_template:
    - claude: "/implement ${item.id}"
      validate:
        claude: "/validate ${item.id}"
        on_incomplete:
          claude: "/complete --gaps ${validation.gaps}"
"#,
    );
    let path = fake_claude(&p);
    let out = p
        .cmd()
        .args(["run", "wf.yml"])
        .env("PATH", path)
        .env_remove("RUNNER_CLAUDE")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        lines(&p, "claude.log"),
        [
            "/implement a",
            "/validate a",
            r#"/complete --gaps {"g":{"description":"a \"b\" $c","severity":"low"}}"#,
            "/validate a",
        ]
    );
}

#[test]
fn validate_reports_bad_validation_blocks_with_line_and_column() {
    let p = Project::new();
    workflow(
        &p,
        r#"setup:
  - shell: "echo ${validation.gaps}"
map:
  input: items.json
  agent_template:
    - shell: "true"
      validate:
        shell: "check ${validation.completion}"
        threshold: 150
        on_incomplete:
          shell: "fix ${validation.gap}"
          prompt: "continue?"
          max_attempts: 0
    - shell: "true"
      validate:
        threshold: 90
      on_failure:
        - shell: "true"
          validate: ["x"]
"#,
    );
    let out = run_expect(&p, &["validate", "wf.yml"], 2);
    let err = stderr(&out);
    for want in [
        "wf.yml:4:12: unknown variable `${validation.gaps}`",
        "known only in its `on_incomplete` handlers",
        "wf.yml:10:16: unknown variable `${validation.completion}`",
        "wf.yml:11:20: threshold 150 is not a percentage",
        "wf.yml:13:18: `${validation.gap}` does not exist",
        "wf.yml:14:19: `prompt` is a Prodigy-only key",
        "wf.yml:15:25: max_attempts must be at least 1",
        "wf.yml:18:9: `validate:` needs `shell:`, `claude:` or `commands:`",
        "wf.yml:21:21: `validate:` belongs to a step of a phase",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // An unknown key inside the block is named with its place.
    workflow(
        &p,
        "map:\n  input: items.json\n  agent_template:\n    - shell: \"true\"\n      validate:\n        shell: x\n        treshold: 90\n",
    );
    let out = run_expect(&p, &["validate", "wf.yml"], 2);
    assert!(
        stderr(&out).contains("wf.yml:9:9: unknown field `treshold`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_validation_command_over_its_timeout_is_killed_and_counts_as_zero() {
    let p = Project::new();
    workflow(
        &p,
        r#"map:
  input: items.json
  agent_template:
    - shell: "true"
      validate:
        shell: "sleep 60 & echo $! > bg.pid; wait"
        timeout: 1
        on_incomplete:
          shell: 'printf "%s\n" "${validation.missing}" > why.txt'
          max_attempts: 1
"#,
    );
    let started = std::time::Instant::now();
    run_expect(&p, &["run", "wf.yml"], 1);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let why = p.read("why.txt");
    assert!(why.contains("timed out after 1s"), "{why}");
    // The validation command's process group was killed, its background child too.
    let pid = read_pid(&p, "bg.pid");
    wait_until(
        std::time::Duration::from_secs(10),
        "the background sleep ends",
        || !pid_alive(pid),
    );
}
