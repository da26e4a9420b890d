//! Issue 15, item 5: the variables Prodigy defines (`${item_index}`, `${item_json}`,
//! `${shell.output}` of the previous shell step, `${shell.stderr}`, `${map.success_rate}`,
//! `${map.completed}`, `${map.results_json}`, Prodigy's fields in `${map.results}`,
//! defaults), and variables that cannot exist rejected before anything runs.
mod common;
#[path = "common/extra.rs"]
mod extra;
use common::*;
use extra::*;

#[test]
fn item_variables_and_the_previous_shell_steps_output() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a","n":1},{"id":"b","n":2}]"#);
    p.file(
        "wf.yml",
        r#"name: vars
mode: mapreduce
setup:
  - shell: "echo from-setup"
  - shell: "echo ${shell.output} > setup.txt"
map:
  input: items.json
  max_parallel: 1
  agent_template:
    - shell: "echo ${item_index} '${item_json}' > item-${item_id}.txt"
    - shell: "echo out-${item.n}; echo err-${item.n} >&2"
    - shell: "echo '${shell.output}' '${shell.stderr}' ${item.missing:-none} ${item.nope|default:zero} > shell-${item_id}.txt"
"#,
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(p.read("setup.txt").trim(), "from-setup");
    assert_eq!(p.read("item-a.txt").trim(), r#"0 {"id":"a","n":1}"#);
    assert_eq!(p.read("item-b.txt").trim(), r#"1 {"id":"b","n":2}"#);
    assert_eq!(p.read("shell-a.txt").trim(), "out-1 err-1 none zero");
    assert_eq!(p.read("shell-b.txt").trim(), "out-2 err-2 none zero");
}

#[test]
fn reduce_sees_prodigys_map_variables() {
    let p = Project::new();
    p.file(
        "items.json",
        r#"[{"id":"a"},{"id":"b"},{"id":"c"},{"id":"bad"}]"#,
    );
    p.file(
        "wf.yml",
        r#"name: vars
on_item_failure: skip
map:
  input: items.json
  agent_template:
    - shell: "echo done-${item_id}; test ${item_id} != bad"
reduce:
  - shell: "echo ${map.success_rate} ${map.completed} ${map.total} > rate.txt"
  - shell: "printf '%s' '${map.results_json}' > results.json"
"#,
    );
    run_expect(&p, &["run", "wf.yml"], 1);
    assert_eq!(p.read("rate.txt").trim(), "75 4 4");
    let results: serde_json::Value = serde_json::from_str(&p.read("results.json")).unwrap();
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 4);
    let a = results.iter().find(|r| r["item_id"] == "a").unwrap();
    assert_eq!(a["success"], true);
    assert_eq!(a["output"], "done-a");
    assert_eq!(a["item"]["id"], "a");
    assert_eq!(a["error"], serde_json::Value::Null);
    assert_eq!(a["commits"], serde_json::json!([]));
    let bad = results.iter().find(|r| r["item_id"] == "bad").unwrap();
    assert_eq!(bad["success"], false);
    assert_eq!(bad["output"], "done-bad");
    assert_eq!(bad["error"], "exited with code 1");
}

#[test]
fn variables_that_cannot_exist_fail_validation() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    let cases = [
        (
            "reduce:\n  - shell: \"echo ${map.succes_rate}\"\n",
            "`map.success_rate`",
        ),
        (
            "reduce:\n  - shell: \"echo ${shell.output}\"\n",
            "the first step has none",
        ),
        ("reduce:\n  - shell: \"echo ${job.name}\"\n", "`job.id`"),
        (
            "reduce:\n  - shell: \"echo ${item_index}\"\n",
            "unknown variable",
        ),
    ];
    for (reduce, want) in cases {
        p.file(
            "wf.yml",
            &format!(
                "name: v\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"touch ran\"\n{reduce}"
            ),
        );
        let out = run_expect(&p, &["validate", "wf.yml"], 2);
        assert!(stderr(&out).contains(want), "{reduce}: {}", stderr(&out));
        run_expect(&p, &["run", "wf.yml"], 2);
        assert!(!p.path().join("ran").exists(), "nothing runs");
    }
}
