//! Issue 15, item 7: Prodigy does not require unique item ids. A Prodigy-format file
//! (`mode: mapreduce`) whose items repeat an `id` runs, the items of a repeated id being
//! identified by position and content (with a warning); resume still runs each item once.
mod common;
#[path = "common/extra.rs"]
mod extra;
use common::*;
use extra::*;

const ITEMS: &str = r#"[{"id":1,"v":"x"},{"id":1,"v":"y"},{"id":2,"v":"z"},"same","same"]"#;

fn workflow(p: &Project, mode: &str) {
    p.file("items.json", ITEMS);
    p.file(
        "wf.yml",
        &format!(
            r#"name: dup
{mode}map:
  input: items.json
  agent_template:
    - shell: "echo '${{item_id}}' >> ran.txt; test -f go || test '${{item}}' != same"
"#
        ),
    );
}

#[test]
fn a_prodigy_file_with_repeated_ids_runs_every_item_once_and_resumes() {
    let p = Project::new();
    workflow(&p, "mode: mapreduce\n");
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 1);
    let err = stderr(&out);
    assert!(
        err.contains("4 items share an `id`") && err.contains("became `1@0:"),
        "{err}"
    );
    let finished = events_named(&out, "item_finished");
    let mut ids: Vec<String> = finished
        .iter()
        .map(|e| e["item_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 5, "{ids:?}");
    assert!(ids.contains(&"2".to_owned()));
    assert!(ids.iter().any(|i| i.starts_with("1@0:")) && ids.iter().any(|i| i.starts_with("1@1:")));
    let failed: Vec<&serde_json::Value> =
        finished.iter().filter(|e| e["status"] == "dlq").collect();
    assert_eq!(failed.len(), 2, "the two `same` items fail: {failed:?}");

    // Resume: only the two failed items run again.
    p.file("go", "");
    let job = p.only_job();
    run_expect(&p, &["resume", &job], 0);
    let ran = sorted_lines(&p, "ran.txt");
    assert_eq!(ran.len(), 7, "{ran:?}");
    let mut counts = std::collections::BTreeMap::new();
    for id in &ran {
        *counts.entry(id.clone()).or_insert(0) += 1;
    }
    assert_eq!(
        counts.values().filter(|&&n| n == 2).count(),
        2,
        "{counts:?}"
    );
    assert_eq!(counts.len(), 5, "{counts:?}");
}

#[test]
fn a_runner_file_still_rejects_repeated_ids() {
    let p = Project::new();
    workflow(&p, "");
    let err = stderr(&run_expect(&p, &["run", "wf.yml"], 2));
    assert!(
        err.contains("duplicate") || err.contains("same id"),
        "{err}"
    );
    assert!(!p.path().join("ran.txt").exists());
}
