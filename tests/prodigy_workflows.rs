//! Issue 15: workflows in the shape of Prodigy's published MapReduce workflows (shell steps
//! only; see tests/fixtures/prodigy/README.md) validate and run, kept under `workflows/` and
//! run from the project root as Prodigy users do.
mod common;
#[path = "common/extra.rs"]
mod extra;
use common::*;
use extra::*;

/// A project with the fixture `name` at `workflows/<name>`, run from its root.
fn project(name: &str) -> Project {
    let p = Project::new();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/prodigy/workflows")
        .join(name);
    p.file(
        &format!("workflows/{name}"),
        &std::fs::read_to_string(src).expect("fixture"),
    );
    let wf = format!("workflows/{name}");
    let out = run_expect(&p, &["validate", &wf], 0);
    assert!(stderr(&out).contains(": ok: "), "{}", stderr(&out));
    p
}

fn run(p: &Project, name: &str, code: i32) -> std::process::Output {
    run_expect(p, &["run", &format!("workflows/{name}"), "--json"], code)
}

#[test]
fn json_input() {
    let p = project("json-input.yml");
    run(&p, "json-input.yml", 0);
    assert_eq!(
        sorted_lines(&p, "completed.txt"),
        [
            "Completed add-types on src/main.rs",
            "Completed optimize on src/config.rs",
            "Completed refactor on src/lib.rs"
        ]
    );
    assert_eq!(
        p.read("summary.txt"),
        "Processed 3 items\nSuccessful: 3, Failed: 0\n"
    );
    assert!(!p.path().join("work-items.json").exists());
}

#[test]
fn command_input() {
    let p = project("command-input.yml");
    p.file("src/a.rs", "fn a() {}\n");
    p.file("src/b.rs", "fn b() {}\nfn c() {}\n");
    run(&p, "command-input.yml", 0);
    assert_eq!(
        sorted_lines(&p, "lines.txt"),
        ["Lines in ./src/a.rs: 1", "Lines in ./src/b.rs: 2"]
    );
    assert_eq!(
        p.read("summary.txt").trim(),
        "Analysis complete. 2 of 2 files"
    );
}

#[test]
fn filter_and_sort_dialect() {
    let p = project("filter-sort.yml");
    let out = run(&p, "filter-sort.yml", 0);
    assert_eq!(events_named(&out, "map_started")[0]["total"], 3);
    // `${shell.output}` is the previous step's whole output (two lines for lint and test).
    let fixed: Vec<String> = sorted_lines(&p, "fixed.txt")
        .into_iter()
        .filter(|l| l.starts_with("Fixed"))
        .collect();
    assert_eq!(fixed.len(), 3, "{fixed:?}");
    assert!(fixed[0].starts_with("Fixed lint issue in src/cook/mod.rs (severity: high) after: Processing item 3: lint in src/cook/mod.rs"), "{fixed:?}");
    assert!(p.read("summary.txt").contains("Total items processed: 3"));
}

#[test]
fn env_and_on_failure() {
    let p = project("env-resume.yml");
    let out = run(&p, "env-resume.yml", 0);
    assert_eq!(events_named(&out, "map_started")[0]["max_parallel"], 2);
    assert_eq!(p.read("output/total.txt").trim(), "150");
    assert_eq!(
        p.read("output/summary.txt").trim(),
        "Processed 5/5 items, 100%"
    );
}

#[test]
fn debt_shape() {
    let p = project("debt-shape.yml");
    let out = run(&p, "debt-shape.yml", 0);
    // Items scoring 5 or more, highest first: d (9.2), b (7.5), c (5.1).
    assert_eq!(events_named(&out, "map_started")[0]["total"], 3);
    assert_eq!(sorted_lines(&p, "fixed.txt"), ["load", "run", "save"]);
    assert_eq!(
        sorted_lines(&p, "debug.txt").len(),
        3,
        "each item's test failed once"
    );
    assert_eq!(
        p.read("summary.txt").trim(),
        "fixed 3 of 3 debt items (100%)"
    );
    let results: serde_json::Value = serde_json::from_str(&p.read("results.json")).unwrap();
    assert_eq!(results.as_array().unwrap().len(), 3);
}

#[test]
fn the_shipped_prodigy_example_runs_from_the_project_root() {
    // Inside a git checkout, as from the runner repository: the example opts out of
    // worktrees, so its files land in place and it leaves no branch.
    let p = Project::new();
    git_init(p.path());
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/prodigy.yml");
    p.file(
        "workflows/prodigy.yml",
        &std::fs::read_to_string(src).expect("example"),
    );
    git_commit_all(p.path(), "init");
    let out = run_expect(&p, &["run", "workflows/prodigy.yml"], 0);
    assert!(
        stderr(&out).contains("processed 3 items (100%)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(p.read("out/beta.txt").trim(), "processing beta");
    assert_eq!(git(p.path(), &["branch", "--list"]), "* main");
}
