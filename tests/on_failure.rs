//! Issue 15, item 3: `on_failure` as Prodigy has it, in setup, map and reduce: the short
//! forms, `fail_workflow` defaulting to false, a successful handler letting the workflow go
//! on, `max_attempts` / `max_retries` retrying the failed command after the handler.
mod common;
#[path = "common/extra.rs"]
mod extra;
use common::*;
use extra::*;

const ONE: &str = r#"[{"id":"a"}]"#;

fn workflow(p: &Project, body: &str) {
    p.file("items.json", ONE);
    p.file("wf.yml", &format!("name: of\nmode: mapreduce\n{body}"));
}

#[test]
fn setup_string_handler_lets_the_workflow_continue() {
    let p = Project::new();
    workflow(
        &p,
        r#"setup:
  - shell: "echo broken; test -f ready"
    on_failure: "echo handled '${shell.output}' > handled.txt"
  - shell: "touch setup-2"
map:
  input: items.json
  agent_template:
    - shell: "true"
reduce:
  - shell: "touch reduced"
"#,
    );
    let out = run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(p.read("handled.txt").trim(), "handled broken");
    assert!(p.path().join("setup-2").exists() && p.path().join("reduced").exists());
    assert!(
        stderr(&out).contains("on_failure handled it"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn reduce_fail_workflow_true_fails_after_the_handler() {
    let p = Project::new();
    workflow(
        &p,
        r#"map:
  input: items.json
  agent_template:
    - shell: "true"
reduce:
  - shell: "exit 3"
    on_failure:
      shell: "touch reduce-handled"
      fail_workflow: true
  - shell: "touch not-reached"
"#,
    );
    run_expect(&p, &["run", "wf.yml"], 1);
    assert!(p.path().join("reduce-handled").exists());
    assert!(!p.path().join("not-reached").exists());
}

#[test]
fn max_attempts_retries_the_failed_command_after_the_handler() {
    let p = Project::new();
    workflow(
        &p,
        r#"map:
  input: items.json
  agent_template:
    - shell: "echo try >> tries.txt; test -f fixed-${item_id}"
      on_failure:
        shell: "echo fix >> tries.txt; touch fixed-${item_id}"
        max_attempts: 3
    - shell: "touch after-${item_id}"
reduce:
  - shell: "echo x; false"
    on_failure:
      shell: "echo reduce-fix >> reduce.txt"
      max_retries: 2
"#,
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    // Map: the command, the handler, the command again (now fixed).
    assert_eq!(lines(&p, "tries.txt"), ["try", "fix", "try"]);
    assert!(p.path().join("after-a").exists());
    // Reduce: the handler runs after each of the 2 attempts; the step still fails, and as
    // `fail_workflow` defaults to false and the handler succeeded, it is forgiven.
    assert_eq!(lines(&p, "reduce.txt"), ["reduce-fix", "reduce-fix"]);
}

#[test]
fn flags_lists_and_failing_handlers() {
    let p = Project::new();
    workflow(
        &p,
        r#"map:
  input: items.json
  agent_template:
    - shell: "false"
      on_failure: true
    - shell: "false"
      on_failure:
        - "echo one >> list.txt"
        - "echo two >> list.txt"
    - shell: "touch reached"
"#,
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(lines(&p, "list.txt"), ["one", "two"]);
    assert!(p.path().join("reached").exists());

    // on_failure: false, a list of steps (runner's form), a failing handler that is fatal:
    // the step fails.
    for (n, of) in [
        "on_failure: false",
        "on_failure:\n        - shell: \"touch handled\"",
        "on_failure:\n        shell: \"exit 4\"\n        handler_failure_fatal: true",
    ]
    .iter()
    .enumerate()
    {
        let _ = std::fs::remove_dir_all(p.state_dir());
        workflow(
            &p,
            &format!(
                "error_policy:\n  on_item_failure: skip\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"false\"\n      {of}\n    - shell: \"touch reached-{n}\"\n"
            ),
        );
        run_expect(&p, &["run", "wf.yml"], 1);
        assert!(!p.path().join(format!("reached-{n}")).exists(), "{of}");
    }
    assert!(p.path().join("handled").exists());

    // A failing handler that is not fatal (Prodigy's default): the step is forgiven.
    let _ = std::fs::remove_dir_all(p.state_dir());
    workflow(
        &p,
        "map:\n  input: items.json\n  agent_template:\n    - shell: \"false\"\n      on_failure: \"echo ran >> failing-handler.txt; exit 4\"\n    - shell: \"touch after-failed-handler\"\n",
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(lines(&p, "failing-handler.txt"), ["ran"]);
    assert!(p.path().join("after-failed-handler").exists());

    // `commands:` with continue_on_error: a failing handler that may fail.
    workflow(
        &p,
        r#"map:
  input: items.json
  agent_template:
    - shell: "false"
      on_failure:
        strategy: recovery
        commands:
          - shell: "exit 1"
            continue_on_error: true
          - "touch second-handler"
    - shell: "touch after-commands"
"#,
    );
    let _ = std::fs::remove_dir_all(p.state_dir());
    run_expect(&p, &["run", "wf.yml"], 0);
    assert!(p.path().join("second-handler").exists());
    assert!(p.path().join("after-commands").exists());
}

#[test]
fn misplaced_keys_are_rejected_and_claude_handlers_accepted() {
    let p = Project::new();
    workflow(
        &p,
        r#"map:
  input: items.json
  agent_template:
    - shell: "false"
      on_failure: "/fix-it"
    - shell: "true"
      continue_on_error: true
"#,
    );
    let err = stderr(&run_expect(&p, &["validate", "wf.yml"], 2));
    assert!(!err.contains("/fix-it"), "{err}");
    assert!(
        err.contains("wf.yml:9:26: `continue_on_error` is only allowed"),
        "{err}"
    );
}

#[test]
fn a_reduce_handler_sees_the_map_results() {
    let p = Project::new();
    workflow(
        &p,
        r#"map:
  input: items.json
  agent_template:
    - shell: "true"
reduce:
  - shell: "false"
    on_failure: "printf '%s' '${map.results_json}' > results.json"
"#,
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    let r: serde_json::Value = serde_json::from_str(&p.read("results.json")).unwrap();
    assert_eq!(r[0]["item_id"], "a");
}
