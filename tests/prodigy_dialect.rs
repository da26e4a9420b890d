//! Prodigy's filter and sort dialect (issue 15, item 2): bare field paths, quoted strings,
//! AND/OR/NOT, `in [...]`, string operators, functions, `NULLS FIRST/LAST`; jq keeps working.
mod common;
#[path = "common/extra.rs"]
mod extra;
use common::*;
use extra::*;

const ITEMS: &str = r#"[
  {"id":"a","severity":"high","priority":2,"path":"src/a.rs","owner":"ann","tags":["x"],"File":{"score":7}},
  {"id":"b","severity":"low","priority":null,"path":"src/b.py","owner":null,"tags":[],"File":{"score":2}},
  {"id":"c","severity":"critical","priority":5,"path":"docs/c.rs","owner":"cy","tags":["x","y"],"File":{"score":9}},
  {"id":"d","severity":"high","priority":1,"path":"src/d.rs","tags":["y"],"File":{"score":4}},
  {"id":"e","severity":"medium","path":"lib/e.rs","owner":"eve","tags":["x","y","z"],"File":{"score":5}}
]"#;

/// The ids the map runs, in order (one at a time), for these map keys.
fn selected(p: &Project, map_keys: &str) -> Vec<String> {
    p.file("items.json", ITEMS);
    p.file(
        "wf.yml",
        &format!(
            "name: sel\nmode: mapreduce\nmap:\n  input: items.json\n{map_keys}  max_parallel: 1\n  agent_template:\n    - shell: \"echo ${{item_id}} >> order.txt\"\n"
        ),
    );
    let _ = std::fs::remove_file(p.path().join("order.txt"));
    let _ = std::fs::remove_dir_all(p.state_dir());
    run_expect(p, &["run", "wf.yml"], 0);
    p.read("order.txt").lines().map(str::to_owned).collect()
}

#[test]
fn bare_fields_quoted_strings_and_word_operators() {
    let p = Project::new();
    let cases: &[(&str, &[&str])] = &[
        (
            "severity == 'high' || severity == 'critical'",
            &["a", "c", "d"],
        ),
        ("severity = \"high\" AND priority > 1", &["a"]),
        (
            "File.score >= 5 and NOT (severity == 'medium')",
            &["a", "c"],
        ),
        (
            "severity in ['high', 'critical'] AND NOT is_null(owner)",
            &["a", "c"],
        ),
        ("tags[1] == 'y'", &["c", "e"]),
        (
            "path starts_with 'src/' && path ends_with '.rs'",
            &["a", "d"],
        ),
        (
            "path matches '^(docs|lib)/' OR contains(path, 'b.')",
            &["b", "c", "e"],
        ),
        ("length(tags) >= 2 && !is_empty(owner)", &["c", "e"]),
        ("is_null(priority)", &["b", "e"]),
    ];
    for (filter, want) in cases {
        let got = selected(
            &p,
            &format!("  filter: \"{}\"\n", filter.replace('"', "\\\"")),
        );
        assert_eq!(&got, want, "filter {filter}");
    }
}

#[test]
fn jq_filters_keep_working() {
    let p = Project::new();
    assert_eq!(
        selected(
            &p,
            "  filter: '(.tags | length) > 1 and (.path | endswith(\".rs\"))'\n"
        ),
        ["c", "e"]
    );
    assert_eq!(
        selected(&p, "  filter: 'item.File.score > 6'\n"),
        ["a", "c"]
    );
}

#[test]
fn sort_by_with_nulls_first_and_last() {
    let p = Project::new();
    assert_eq!(
        selected(&p, "  sort_by: \"priority DESC NULLS LAST, path ASC\"\n"),
        ["c", "a", "d", "e", "b"]
    );
    assert_eq!(
        selected(&p, "  sort_by: \"priority ASC NULLS FIRST, path DESC\"\n"),
        ["b", "e", "d", "a", "c"]
    );
    assert_eq!(
        selected(&p, "  sort_by: \"File.score descending\"\n  max_items: 2\n"),
        ["c", "a"]
    );
}

#[test]
fn dialect_errors_point_at_the_token() {
    let p = Project::new();
    p.file("items.json", ITEMS);
    p.file(
        "wf.yml",
        "name: bad\nmap:\n  input: items.json\n  filter: \"severity in ['high', high] AND x\"\n  agent_template:\n    - shell: \"true\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml"], 2);
    let err = stderr(&out);
    assert!(err.contains("wf.yml:4:"), "{err}");
    assert!(
        err.contains("character 22") && err.contains("`high`") && err.contains("literals"),
        "{err}"
    );
    p.file(
        "wf2.yml",
        "name: bad\nmap:\n  input: items.json\n  filter: \"severity == 'high' AND\"\n  agent_template:\n    - shell: \"true\"\n",
    );
    let err = stderr(&run_expect(&p, &["run", "wf2.yml"], 2));
    assert!(err.contains("at the end") && err.contains("AND"), "{err}");
}
