mod common;
use common::*;

#[test]
fn fanout_runs_end_to_end() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a","n":2},{"id":"b","n":3}]"#);
    p.file(
        "wf.yml",
        "name: smoke\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"echo ${item.n} >> seen.txt\"\nreduce:\n  - shell: \"echo ${map.successful}/${map.total} > summary.txt\"\n",
    );
    let out = p.run(&["run", "wf.yml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mut seen: Vec<String> = p.read("seen.txt").lines().map(String::from).collect();
    seen.sort();
    assert_eq!(seen, ["2", "3"]);
    assert_eq!(p.read("summary.txt").trim(), "2/2");
    let st = p.status(&p.only_job());
    assert_eq!(st["state"], "completed");
    assert_eq!(st["successful"], 2);
}
