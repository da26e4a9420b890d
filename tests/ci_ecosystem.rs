//! CI-facing behaviour: stable `--json` field names (insta snapshots), `--junit`, GitHub
//! Actions annotations and step summary, `--metrics-file`, `--color`/`NO_COLOR`, quiet
//! broken pipes, `completions`/`man`/`schema`, and the global flags `--set`,
//! `RUNNER_STATE_DIR`, `-q`/`-v`, `RUST_LOG`.
mod common;
#[path = "common/extra.rs"]
mod extra;

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;

use common::*;
use extra::*;
use serde_json::Value;

/// Three items; `b` always fails (exit 3, a stderr line with `%`), after one retry.
const WF: &str = r#"name: ci-demo
map:
  input:
    command: echo '[{"id":"a"},{"id":"b"},{"id":"c"}]'
  max_parallel: 1
  retry:
    max_attempts: 2
    backoff: fixed
    initial_delay: 10ms
    jitter: false
  agent_template:
    - shell: 'if [ ${item.id} = b ]; then echo "b broke: 50% done" >&2; exit 3; fi; echo ok'
"#;

fn project() -> Project {
    let p = Project::new();
    p.file("wf.yml", WF);
    p
}

fn run_expect(p: &Project, args: &[&str], want: i32) -> std::process::Output {
    let out = p.run(args);
    assert_eq!(
        code(&out),
        want,
        "runner {args:?}\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    out
}

// ---------------------------------------------------------------- JSON field snapshots

/// Keys whose values change from run to run (times, durations, paths, pids).
const VOLATILE: &[&str] = &[
    "duration_ms",
    "delay_ms",
    "created_at",
    "started_at",
    "updated_at",
    "workflow_path",
    "p50",
    "p95",
    "max",
    "peak_rss_kb",
    "cpu_ms",
    "throughput_per_s",
    "first_failure_at",
    "last_failure_at",
    "heartbeat_age_s",
    "heartbeat_at",
    "pid",
    "host",
    "paused_at",
    "resumed_at",
    "since",
];

/// Replace volatile values by a placeholder (null stays null, so optional fields keep
/// their shape in the snapshot).
fn redact(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                // throughput is null when no time passed: redact it either way
                let leaf = !val.is_object();
                if leaf
                    && VOLATILE.contains(&k.as_str())
                    && (!val.is_null() || k == "throughput_per_s")
                {
                    *val = Value::String("[redacted]".into());
                } else {
                    redact(val);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

fn ndjson(o: &std::process::Output) -> Value {
    let mut v = Value::Array(events(o));
    redact(&mut v);
    v
}

fn doc(o: &std::process::Output) -> Value {
    let mut v: Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    redact(&mut v);
    v
}

#[test]
fn json_outputs_keep_their_field_names() {
    let p = project();
    let run = run_expect(&p, &["run", "wf.yml", "--job-id", "snap", "--json"], 1);
    insta::assert_json_snapshot!("run_events", ndjson(&run));
    let st = run_expect(&p, &["status", "snap", "--json"], 0);
    insta::assert_json_snapshot!("status_job", doc(&st));
    let table = run_expect(&p, &["status", "--json"], 0);
    insta::assert_json_snapshot!("status_table", doc(&table));
    let dlq = run_expect(&p, &["dlq", "list", "snap", "--json"], 0);
    insta::assert_json_snapshot!("dlq_list", doc(&dlq));
    let retry = run_expect(&p, &["dlq", "retry", "snap", "--json"], 1);
    insta::assert_json_snapshot!("dlq_retry_events", ndjson(&retry));
    let resume = run_expect(&p, &["resume", "snap", "--json"], 1);
    insta::assert_json_snapshot!("resume_events", ndjson(&resume));
}

// ---------------------------------------------------------------- JUnit

fn junit(path: &Path) -> quick_junit::Report {
    let xml = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no JUnit report at {}: {e}", path.display()));
    quick_junit::Report::deserialize_from_str(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"))
}

#[test]
fn junit_report_has_one_testcase_per_item_and_the_failure() {
    let p = project();
    run_expect(
        &p,
        &[
            "run",
            "wf.yml",
            "--job-id",
            "ju",
            "--junit",
            "reports/junit.xml",
        ],
        1,
    );
    let report = junit(&p.path().join("reports/junit.xml"));
    assert_eq!(report.test_suites.len(), 1);
    let suite = &report.test_suites[0];
    assert_eq!(suite.name.as_str(), "ci-demo");
    assert_eq!((suite.tests, suite.failures, suite.errors), (3, 1, 0));
    // One testcase per item, in the order the items finished (b's retry waits while c runs).
    let mut names: Vec<&str> = suite.test_cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["a", "b", "c"]);
    let case = |name: &str| {
        suite
            .test_cases
            .iter()
            .find(|c| c.name.as_str() == name)
            .expect("testcase")
    };
    let b = case("b");
    match &b.status {
        quick_junit::TestCaseStatus::NonSuccess {
            kind,
            message,
            ty,
            description,
            ..
        } => {
            assert_eq!(*kind, quick_junit::NonSuccessKind::Failure);
            let message = message.as_ref().expect("message").as_str();
            assert!(message.contains("code 3"), "{message}");
            assert!(message.contains("2 attempts"), "{message}");
            assert_eq!(ty.as_ref().map(|t| t.as_str()), Some("exit 3"));
            let text = description.as_ref().expect("failure text").as_str();
            assert!(text.contains("b broke: 50% done"), "{text}");
        }
        other => panic!("item b should have failed: {other:?}"),
    }
    let err = b.system_err.as_ref().expect("system-err").as_str();
    assert!(err.contains("b broke"), "{err}");
    assert!(matches!(
        case("a").status,
        quick_junit::TestCaseStatus::Success { .. }
    ));

    // dlq retry: only the item run again is in its report.
    run_expect(&p, &["dlq", "retry", "ju", "--junit", "retry.xml"], 1);
    let report = junit(&p.path().join("retry.xml"));
    let suite = &report.test_suites[0];
    assert_eq!((suite.tests, suite.failures), (1, 1));
    assert_eq!(suite.test_cases[0].name.as_str(), "b");
}

#[test]
fn junit_report_on_resume_and_failed_setup() {
    let p = Project::new();
    p.file(
        "wf.yml",
        "name: setup-fails\nsetup:\n  - shell: 'echo nope >&2; exit 4'\nmap:\n  input:\n    command: echo '[1]'\n  agent_template:\n    - shell: 'true'\n",
    );
    run_expect(
        &p,
        &["run", "wf.yml", "--job-id", "sf", "--junit", "j.xml"],
        1,
    );
    let report = junit(&p.path().join("j.xml"));
    let setup = report
        .test_suites
        .iter()
        .find(|s| s.name.as_str() == "setup-fails.setup")
        .expect("a setup testsuite");
    assert_eq!((setup.tests, setup.failures), (1, 1));
    // resume writes its own report too
    run_expect(&p, &["resume", "sf", "--junit", "r.xml"], 1);
    assert!(!junit(&p.path().join("r.xml")).test_suites.is_empty());
}

// ---------------------------------------------------------------- GitHub Actions

#[test]
fn github_actions_annotations_and_step_summary() {
    let p = project();
    let summary = p.path().join("summary.md");
    std::fs::write(&summary, "earlier step\n").unwrap();
    let out = p
        .cmd()
        .args(["run", "wf.yml", "--job-id", "gh"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let so = stdout(&out);
    let lines: Vec<&str> = so.lines().filter(|l| l.starts_with("::error")).collect();
    assert_eq!(lines.len(), 1, "{so}");
    // title: `:` and `,` escaped; message: `%` and newlines escaped, on one line
    assert!(
        lines[0]
            .starts_with("::error title=ci-demo%3A item b failed::item b failed after 2 attempts"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("%0Astderr:%0Ab broke: 50%25 done"),
        "{}",
        lines[0]
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.starts_with("earlier step\n"),
        "appended, not replaced: {md}"
    );
    assert!(md.contains("| total | succeeded | failed |"), "{md}");
    assert!(md.contains("| 3 | 2 | 1 | 1 | 0 |"), "{md}");
    assert!(md.contains("| `b` | 2 |"), "{md}");
}

#[test]
fn github_annotations_go_to_stderr_with_json_and_nowhere_outside_actions() {
    let p = project();
    let out = p
        .cmd()
        .args(["run", "wf.yml", "--job-id", "ghj", "--json"])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    let evs = events(&out); // every stdout line is JSON
    assert!(evs.iter().any(|e| e["event"] == "job_finished"));
    assert!(stderr(&out).contains("::error title=ci-demo%3A item b failed::"));

    let out = run_expect(&p, &["run", "wf.yml", "--job-id", "plain"], 1);
    assert!(!stdout(&out).contains("::error"));
    assert!(!stderr(&out).contains("::error"));
}

// ---------------------------------------------------------------- metrics

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}

#[test]
fn metrics_file_has_counts_retries_and_durations() {
    let p = project();
    run_expect(
        &p,
        &[
            "run",
            "wf.yml",
            "--job-id",
            "m1",
            "--metrics-file",
            "metrics/runner.prom",
        ],
        1,
    );
    let text = p.read("metrics/runner.prom");
    let l = r#"{job="m1",workflow="ci-demo"}"#;
    assert_eq!(metric(&text, &format!("runner_items_total{l}")), 3.0);
    assert_eq!(metric(&text, &format!("runner_items_succeeded{l}")), 2.0);
    assert_eq!(metric(&text, &format!("runner_items_failed{l}")), 1.0);
    assert_eq!(metric(&text, &format!("runner_items_retried{l}")), 1.0);
    assert_eq!(metric(&text, &format!("runner_job_exit_code{l}")), 1.0);
    assert_eq!(
        metric(&text, &format!("runner_item_duration_seconds_count{l}")),
        3.0
    );
    assert_eq!(
        metric(
            &text,
            r#"runner_item_duration_seconds_bucket{job="m1",workflow="ci-demo",le="+Inf"}"#
        ),
        3.0
    );
    assert!(text.contains("# TYPE runner_item_duration_seconds histogram"));
    // written atomically: no temporary file is left beside it
    let names: Vec<_> = std::fs::read_dir(p.path().join("metrics"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["runner.prom"]);
}

// ---------------------------------------------------------------- colour

#[test]
fn colour_only_when_allowed() {
    let p = project();
    let always = run_expect(
        &p,
        &["--color", "always", "run", "wf.yml", "--job-id", "c1"],
        1,
    );
    let err = stderr(&always);
    assert!(err.contains("\x1b[31mfailed\x1b[0m"), "{err}");
    assert!(err.contains("\x1b[31mfinished with failures"), "{err}");
    for (args, no_color) in [
        (vec!["--color", "never"], None),
        (vec![], None), // auto, stderr is not a terminal here
        (vec!["--color", "auto"], Some("1")),
    ] {
        let mut c = p.cmd();
        c.args(&args).args(["run", "wf.yml"]);
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        let out = c.output().unwrap();
        assert_eq!(code(&out), 1);
        assert!(!stderr(&out).contains('\x1b'), "{args:?}: {}", stderr(&out));
    }
    // green for a completed job
    p.file(
        "ok.yml",
        "name: fine\nmap:\n  input:\n    command: echo '[1]'\n  agent_template:\n    - shell: 'true'\n",
    );
    let ok = run_expect(&p, &["--color=always", "run", "ok.yml"], 0);
    assert!(
        stderr(&ok).contains("\x1b[32mcompleted\x1b[0m"),
        "{}",
        stderr(&ok)
    );
}

// ---------------------------------------------------------------- broken pipes

/// Run runner with stdout on a pipe whose reading end is already closed: every write
/// fails with EPIPE.
fn with_closed_stdout(p: &Project, args: &[&str]) -> std::process::Output {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    unsafe { libc::close(fds[0]) };
    let write_end = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(args)
        .current_dir(p.path())
        .env("RUNNER_STATE_DIR", p.state_dir())
        .env_remove("GITHUB_ACTIONS")
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn closed_stdout_ends_every_printing_command_quietly() {
    let p = project();
    run_expect(&p, &["run", "wf.yml", "--job-id", "bp"], 1);
    let cases: &[(&[&str], i32)] = &[
        (&["status"], 0),
        (&["status", "--json"], 0),
        (&["status", "bp"], 0),
        (&["status", "bp", "--json"], 0),
        (&["dlq", "list", "bp"], 0),
        (&["dlq", "list", "bp", "--json"], 0),
        (&["dlq", "show", "bp", "b"], 0),
        (&["logs", "bp", "b"], 0),
        (&["logs", "bp"], 0),
        (&["run", "wf.yml", "--dry-run"], 0),
        (&["completions", "bash"], 0),
        (&["man"], 0),
        (&["schema"], 0),
        (&["--help"], 0),
        (&["clean", "--dry-run"], 0),
        // the job runs to its end; only its NDJSON is lost
        (&["run", "wf.yml", "--json", "--job-id", "bp2"], 1),
    ];
    for (args, want) in cases {
        let out = with_closed_stdout(&p, args);
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            !err.to_lowercase().contains("broken pipe"),
            "{args:?}: {err}"
        );
        assert_eq!(code(&out), *want, "{args:?}: {err}");
    }
    assert_eq!(p.status("bp2")["state"], "failed");
}

#[test]
fn shell_pipelines_into_head_exit_zero() {
    let p = project();
    run_expect(&p, &["run", "wf.yml", "--job-id", "hd"], 1);
    let bin = env!("CARGO_BIN_EXE_runner");
    for cmd in [
        "status | head -1",
        "dlq list hd | head -1",
        "status --json | head -c 10",
        "man | head -1",
    ] {
        let script = format!("set -o pipefail; \"$RUNNER\" {cmd} >/dev/null");
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .current_dir(p.path())
            .env("RUNNER", bin)
            .env("RUNNER_STATE_DIR", p.state_dir())
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{cmd}");
    }
}

// ---------------------------------------------------------------- completions, man, schema

#[test]
fn completions_for_each_shell() {
    let p = Project::new();
    for (shell, marker) in [
        ("bash", "complete -F _runner"),
        ("zsh", "#compdef runner"),
        ("fish", "complete -c runner"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = run_expect(&p, &["completions", shell], 0);
        let text = stdout(&out);
        assert!(
            text.contains(marker),
            "{shell}: {}",
            &text[..text.len().min(300)]
        );
        assert!(text.contains("resume") && text.contains("dlq"), "{shell}");
    }
    run_expect(&p, &["completions", "tcsh"], 2);
}

#[test]
fn man_page_is_roff() {
    let p = Project::new();
    let out = run_expect(&p, &["man"], 0);
    let text = stdout(&out);
    assert!(text.contains(".TH runner 1"), "{text}");
    assert!(
        text.contains(".SH NAME") && text.contains("resume"),
        "{text}"
    );
}

fn committed_schema() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/workflow.schema.json"),
    )
    .unwrap_or_default()
}

#[test]
fn committed_schema_is_current() {
    let p = Project::new();
    let out = run_expect(&p, &["schema"], 0);
    assert!(
        stdout(&out) == committed_schema(),
        "schema/workflow.schema.json is out of date; regenerate it with:\n    cargo run -q -- schema > schema/workflow.schema.json"
    );
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&committed_schema()).expect("schema JSON");
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("YAML")
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn schema_accepts_the_shipped_workflows() {
    let v = validator();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().and_then(|x| x.to_str()) != Some("yml") {
            continue;
        }
        let doc = yaml(&std::fs::read_to_string(&path).unwrap());
        let errs = errors(&v, &doc);
        assert!(errs.is_empty(), "{}: {errs:#?}", path.display());
        n += 1;
    }
    assert!(n >= 4, "found only {n} workflows in {}", dir.display());
    // the other accepted shapes
    let doc = yaml(
        r#"
name: shapes
env: { N: 2, FLAG: true, S: text }
setup: { commands: [ { shell: "true" } ], timeout: 30 }
map:
  input: { file: items.json }
  max_parallel: "${env.N}"
  timeout: 90
  agent_template:
    - shell: "false"
      timeout: "1m 30s"
      capture_output: true
      on_failure: { shell: "echo handled", fail_workflow: false }
    - shell: "true"
      on_failure: [ { shell: "echo a" } ]
reduce:
"#,
    );
    assert_eq!(errors(&v, &doc), Vec::<String>::new());
}

#[test]
fn schema_rejects_what_runner_rejects() {
    let v = validator();
    for (what, text) in [
        ("unknown key", "name: x\nmap:\n  input: a\n  stesp: []\n"),
        ("missing map", "name: x\n"),
        (
            "input with both forms",
            "name: x\nmap:\n  input: { file: a, command: b }\n",
        ),
        (
            "a Prodigy-only step",
            "name: x\nmap:\n  input: a\n  agent_template:\n    - goal_seek: {}\n",
        ),
        (
            "a Prodigy-only top-level key",
            "name: x\nsecrets: {}\nmap:\n  input: a\n",
        ),
        (
            "a list as a duration",
            "name: x\nmap:\n  input: a\n  timeout: [1]\n",
        ),
    ] {
        assert!(
            !errors(&v, &yaml(text)).is_empty(),
            "{what} should be invalid"
        );
    }
}

// ---------------------------------------------------------------- global flags

#[test]
fn set_overrides_a_workflow_env_value() {
    let p = Project::new();
    p.file(
        "wf.yml",
        "name: sets\nenv:\n  GREETING: hello\nmap:\n  input:\n    command: echo '[1]'\n  agent_template:\n    - shell: 'echo \"$GREETING\" > out.txt'\n",
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(p.read("out.txt").trim(), "hello");
    run_expect(&p, &["run", "wf.yml", "--set", "GREETING=bye now"], 0);
    assert_eq!(p.read("out.txt").trim(), "bye now");
}

#[test]
fn state_dir_from_env_and_flag() {
    let p = project();
    // the harness sets RUNNER_STATE_DIR=<project>/.runner
    run_expect(&p, &["run", "wf.yml", "--job-id", "in-env"], 1);
    assert!(p.job_dir("in-env").is_dir());
    assert!(!p.path().join(".runner-other").exists());
    // --state-dir wins over the environment
    run_expect(
        &p,
        &[
            "--state-dir",
            ".runner-other",
            "run",
            "wf.yml",
            "--job-id",
            "in-flag",
        ],
        1,
    );
    assert!(p.path().join(".runner-other/jobs/in-flag").is_dir());
    assert!(!p.job_dir("in-flag").exists());
    let out = run_expect(&p, &["status", "--json"], 0);
    let ids: Vec<Value> = serde_json::from_slice::<Vec<Value>>(&out.stdout)
        .unwrap()
        .into_iter()
        .map(|d| d["job_id"].clone())
        .collect();
    assert_eq!(ids, [Value::from("in-env")]);
}

#[test]
fn quiet_and_verbose_change_human_output() {
    let p = project();
    let normal = stderr(&run_expect(&p, &["run", "wf.yml"], 1));
    assert!(normal.contains("map: 3 of 3 items to run"), "{normal}");
    assert!(!normal.contains("item a ok"), "{normal}");

    let quiet = stderr(&run_expect(&p, &["-q", "run", "wf.yml"], 1));
    assert!(!quiet.contains("map: 3 of 3"), "{quiet}");
    assert!(
        quiet.contains("item b failed"),
        "errors still shown: {quiet}"
    );
    assert!(
        quiet.contains("finished with failures"),
        "summary still shown: {quiet}"
    );

    let verbose = stderr(&run_expect(&p, &["-v", "run", "wf.yml"], 1));
    assert!(verbose.contains("item a ok"), "{verbose}");
    assert!(verbose.contains("item b: attempt 1 failed"), "{verbose}");

    run_expect(&p, &["-q", "-v", "status"], 2);
}

#[test]
fn rust_log_filters_diagnostics() {
    let p = project();
    run_expect(&p, &["run", "wf.yml", "--job-id", "rl"], 1);
    std::fs::write(p.job_dir("rl").join("checkpoint.bin"), "garbage").unwrap();
    let default = stderr(&run_expect(&p, &["status", "rl"], 0));
    assert!(default.contains("ignoring the checkpoint"), "{default}");
    let off = p
        .cmd()
        .args(["status", "rl"])
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert_eq!(code(&off), 0);
    assert!(
        !stderr(&off).contains("ignoring the checkpoint"),
        "{}",
        stderr(&off)
    );
}
