//! Issue 15, item 6: keys Prodigy accepts (`timeout_config`, `env_files`, top-level
//! `error_collection`, `on_item_failure: retry`, `capture: "shell.output"`), the rest of
//! Prodigy's keys still rejected by name, and `validate` reporting every error in file order.
mod common;
#[path = "common/extra.rs"]
mod extra;
use common::*;
use extra::*;

#[test]
fn timeout_config_limits_items_and_commands() {
    let p = Project::new();
    p.file(
        "items.json",
        r#"[{"id":"fast"},{"id":"slow"},{"id":"slow2"}]"#,
    );
    p.file(
        "wf.yml",
        r#"name: tc
mode: mapreduce
map:
  input: items.json
  timeout_config:
    agent_timeout_secs: 30
    timeout_policy: hybrid
    cleanup_grace_period_secs: 1
    timeout_action: dlq
    enable_monitoring: true
    command_timeouts:
      shell_1: 1
      claude: 300
  agent_template:
    - shell: "true"
    - shell: "case ${item_id} in slow*) sleep 20;; esac; echo ${item_id} >> done.txt"
"#,
    );
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 1);
    assert_eq!(lines(&p, "done.txt"), ["fast"]);
    let timed_out = events_named(&out, "item_timed_out");
    assert_eq!(timed_out.len(), 2, "{timed_out:?}");
    assert!(
        timed_out
            .iter()
            .all(|e| e["error"] == "step 2 timed out after 1s"),
        "{timed_out:?}"
    );
    p.file(
        "bad.yml",
        "name: tc\nmap:\n  input: items.json\n  timeout_config:\n    timeout_action: skip\n  agent_template:\n    - shell: \"true\"\n",
    );
    let err = stderr(&run_expect(&p, &["validate", "bad.yml"], 2));
    assert!(
        err.contains("bad.yml:5:") && err.contains("timeout_action"),
        "{err}"
    );
}

#[test]
fn env_files_layer_between_the_environment_and_env() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(".env", "# base\nA=from-env-file\nB=from-env-file\nPAR=2\n");
    p.file(".env.local", "B='from-local'\nC=\"c value\"\n");
    p.file(
        "wf.yml",
        r#"name: ef
env_files:
  - .env
  - .env.local
  - .env.missing
env:
  C: from-workflow
map:
  input: items.json
  max_parallel: $PAR
  agent_template:
    - shell: "echo $A $B $C ${env.A} > out.txt"
"#,
    );
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 0);
    assert_eq!(
        p.read("out.txt").trim(),
        "from-env-file from-local from-workflow from-env-file"
    );
    assert_eq!(events_named(&out, "map_started")[0]["max_parallel"], 2);
}

#[test]
fn error_collection_retry_and_capture_shell_output_are_accepted() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"flaky"}]"#);
    for ec in ["aggregate", "{ batched: { size: 5 } }"] {
        p.file(
            "wf.yml",
            &format!(
                r#"name: ec
error_collection: {ec}
error_policy:
  error_collection: immediate
on_item_failure: retry
map:
  input: items.json
  agent_template:
    - shell: "echo hi"
      capture: "shell.output"
    - shell: "echo '${{shell.output}}' > cap.txt; echo x >> tries.txt; test $(wc -l < tries.txt) -ge 2"
"#
            ),
        );
        let _ = std::fs::remove_file(p.path().join("tries.txt"));
        let _ = std::fs::remove_dir_all(p.state_dir());
        run_expect(&p, &["run", "wf.yml"], 0);
        assert_eq!(p.read("cap.txt").trim(), "hi");
        assert_eq!(lines(&p, "tries.txt").len(), 2, "retried once: {ec}");
    }
}

#[test]
fn validate_reports_every_error_in_file_order() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        r#"name: many
secrets:
  KEY: x
setup:
  - goal_seek: { goal: prepare }
  - shell: "echo ${nosuch}"
map:
  input: items.json
  max_parallel: 0
  filter: "severity == 'high' AND"
  agent_template:
    - shell: "true"
      foreach: [a]
reduce:
  - shell: "echo ${map.succes_rate}"
error_policy:
  circuit_breaker: { failure_threshold: 3 }
"#,
    );
    let out = run_expect(&p, &["validate", "wf.yml"], 2);
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    let wanted = [
        ("wf.yml:3:", "`secrets` is a Prodigy-only key"),
        ("wf.yml:5:", "`goal_seek` is a Prodigy-only key"),
        ("wf.yml:6:", "unknown variable `${nosuch}`"),
        ("wf.yml:9:", "max_parallel must be at least 1"),
        ("wf.yml:10:", "invalid filter expression"),
        ("wf.yml:13:", "`foreach` is a Prodigy-only key"),
        ("wf.yml:15:", "`map.success_rate`"),
        ("wf.yml:17:", "`circuit_breaker` is a Prodigy-only key"),
    ];
    assert_eq!(lines.len(), wanted.len(), "{err}");
    for (line, (at, what)) in lines.iter().zip(wanted) {
        assert!(
            line.starts_with("runner: ") && line.contains(at) && line.contains(what),
            "expected {at} {what}, got {line}\n{err}"
        );
    }
}

#[test]
fn validate_reports_every_unknown_key() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        "name: typos\nmap:\n  input: items.json\n  max_paralel: 2\n  agent_template:\n    - shell: \"true\"\n      timout: 5\n      claude: \"/x\"\nreduse:\n  - shell: \"true\"\n",
    );
    let err = stderr(&run_expect(&p, &["validate", "wf.yml"], 2));
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    for (line, (at, key)) in lines.iter().zip([
        ("wf.yml:4:3", "max_paralel"),
        ("wf.yml:7:7", "timout"),
        ("wf.yml:9:1", "reduse"),
    ]) {
        assert!(
            line.starts_with(&format!(
                "runner: {at}: unknown field `{key}`, expected one of"
            )),
            "{line}\n{err}"
        );
    }
}

#[test]
fn command_timeouts_apply_by_step_kind_as_in_prodigy() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    // A stand-in Claude that hangs.
    let claude = p.executable("claude.sh", "#!/bin/sh\nsleep 20\n");
    // `shell` limits shell steps only; `claude` limits the Claude step.
    p.file(
        "wf.yml",
        r#"name: ct
mode: mapreduce
map:
  input: items.json
  timeout_config:
    command_timeouts:
      shell: 1
      claude: 2
  agent_template:
    - shell: "sleep 0.1; echo shell-ok >> done.txt"
    - claude: "/hang ${item_id}"
"#,
    );
    let out = p
        .cmd()
        .env("RUNNER_CLAUDE", &claude)
        .args(["run", "wf.yml", "--json"])
        .output()
        .expect("runs");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(lines(&p, "done.txt"), ["shell-ok"]);
    let timed_out = events_named(&out, "item_timed_out");
    assert_eq!(timed_out.len(), 1, "{timed_out:?}");
    assert_eq!(timed_out[0]["error"], "step 2 timed out after 2s");
    // A numbered key names a step of its kind.
    p.file(
        "bad.yml",
        "name: ct\nmode: mapreduce\nmap:\n  input: items.json\n  timeout_config:\n    command_timeouts:\n      claude_0: 5\n      shell_7: 5\n  agent_template:\n    - shell: \"true\"\n",
    );
    let err = stderr(&run_expect(&p, &["validate", "bad.yml"], 2));
    for want in [
        "`claude_0`: step 0 is not a claude step",
        "`shell_7`: there is no step 7",
    ] {
        assert!(err.contains(want), "want {want:?} in:\n{err}");
    }
}
