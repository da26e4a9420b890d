//! Issue 15, item 4: environment variables in configuration fields (`max_parallel:
//! ${MAX_PARALLEL}`, `input: "${ANALYSIS_DIR}/x.json"`, `agent_timeout_secs: "$T"`),
//! resolved before use; an undefined one is a validation error naming it.
mod common;
#[path = "common/extra.rs"]
mod extra;
use common::*;
use extra::*;

const ITEMS: &str = r#"[{"id":"a"},{"id":"b"},{"id":"c"}]"#;

#[test]
fn prodigy_style_env_in_input_max_parallel_and_timeout() {
    let p = Project::new();
    p.file("data/x.json", ITEMS);
    p.file(
        "wf.yml",
        r#"name: cfg
mode: mapreduce
env:
  MAX_PARALLEL: 2
  ANALYSIS_DIR: data
  T: "1"
map:
  input: "${ANALYSIS_DIR}/x.json"
  max_parallel: ${MAX_PARALLEL}
  agent_timeout_secs: "$T"
  agent_template:
    - shell: "if [ ${item_id} = c ]; then sleep 5; fi; echo ${item_id} >> seen.txt"
"#,
    );
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 1);
    assert_eq!(events_named(&out, "map_started")[0]["max_parallel"], 2);
    assert_eq!(sorted_lines(&p, "seen.txt"), ["a", "b"]);
    let timed_out = events_named(&out, "item_timed_out");
    assert!(
        timed_out
            .iter()
            .any(|e| e["item_id"] == "c" && e["error"] == "step 1 timed out after 1s"),
        "item c times out after $T = 1 second: {timed_out:?}"
    );
}

#[test]
fn process_env_set_and_env_prefix_forms() {
    let p = Project::new();
    p.file("in/x.json", ITEMS);
    p.file(
        "wf.yml",
        r#"name: cfg
map:
  input: { file: "${env.IN_DIR}/x.json" }
  max_items: $LIMIT
  offset: "${SKIP:-0}"
  max_parallel: 1
  agent_template:
    - shell: "echo ${item_id} >> seen.txt"
"#,
    );
    let out = p
        .cmd()
        .env("IN_DIR", "in")
        .env("LIMIT", "2")
        .args(["run", "wf.yml"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines(&p, "seen.txt"), ["a", "b"]);
    std::fs::remove_file(p.path().join("seen.txt")).unwrap();
    let out = p
        .cmd()
        .env("IN_DIR", "in")
        .args(["run", "wf.yml", "--set", "LIMIT=1", "--set", "SKIP=2"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines(&p, "seen.txt"), ["c"]);
}

#[test]
fn an_undefined_variable_is_a_validation_error_naming_it() {
    let p = Project::new();
    p.file("x.json", ITEMS);
    p.file(
        "wf.yml",
        "name: cfg\nmap:\n  input: x.json\n  max_parallel: \"${NO_SUCH_PARALLEL}\"\n  agent_template:\n    - shell: \"true\"\n",
    );
    for args in [&["validate", "wf.yml"][..], &["run", "wf.yml"][..]] {
        let out = p
            .cmd()
            .env_remove("NO_SUCH_PARALLEL")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(code(&out), 2, "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains("wf.yml:4:") && err.contains("`NO_SUCH_PARALLEL`"),
            "{err}"
        );
    }
    assert!(p.jobs().is_empty(), "no job for an invalid workflow");
    let out = p
        .cmd()
        .args(["validate", "wf.yml"])
        .env("NO_SUCH_PARALLEL", "3")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    p.file(
        "wf2.yml",
        "name: cfg\nmap:\n  input: x.json\n  max_parallel: \"${item.n}\"\n  agent_template:\n    - shell: \"true\"\n",
    );
    let err = stderr(&run_expect(&p, &["validate", "wf2.yml"], 2));
    assert!(err.contains("not an environment variable"), "{err}");
}
