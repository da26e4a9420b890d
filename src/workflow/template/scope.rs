//! Which `${...}` variables exist where: the roots a template may name in each part of a
//! workflow, and the paths below the roots whose shape runner fixes (`${map.total}`,
//! `${job.id}`, `${shell.output}`...). Used by validation so that a typo, or a variable that
//! cannot exist there, is caught before anything runs.

use crate::workflow::step_validation::{VALIDATION_DEEP_KEYS, VALIDATION_KEYS};
use crate::workflow::template::{PathSeg, VarRef};

/// The part of a workflow a template stands in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Workflow `env` values and `max_parallel`.
    Env,
    Setup,
    /// The map's `id:` template.
    ItemId,
    Map,
    Reduce,
    /// Prodigy's `merge:` block.
    Merge,
}

const ALWAYS: &[&str] = &["env", "job", "workflow"];
const ITEM: &[&str] = &["item", "item_id", "item_index", "item_json", "attempt"];
const RESERVED: &[&str] = &[
    "item",
    "item_id",
    "item_index",
    "item_json",
    "attempt",
    "env",
    "job",
    "workflow",
    "map",
    "shell",
    "validation",
    "merge",
];

/// The keys of `${merge.KEY}` in the `merge:` block (Prodigy's, and `worktree_path`).
pub const MERGE_KEYS: &[&str] = &[
    "worktree",
    "worktree_path",
    "source_branch",
    "target_branch",
    "session_id",
];

/// The keys of `${map.KEY}` in reduce.
pub const MAP_KEYS: &[&str] = &[
    "total",
    "successful",
    "failed",
    "completed",
    "success_rate",
    "results",
    "results_json",
    "results_file",
];

/// The keys of `${shell.KEY}`: the previous shell step's stdout and the end of its stderr.
pub const SHELL_KEYS: &[&str] = &["output", "stderr"];

#[derive(Debug, Clone)]
pub struct Scope {
    part: Part,
    captures: Vec<String>,
    /// A shell step ran before this one in the same unit (or this is an `on_failure`
    /// handler): `${shell.output}` exists.
    shell: bool,
    /// In a `validate.on_incomplete` handler: `${validation.*}` exists.
    validation: bool,
}

impl Scope {
    pub fn new(part: Part) -> Self {
        Scope {
            part,
            captures: Vec::new(),
            shell: false,
            validation: false,
        }
    }

    /// Captures of earlier phases (setup's captures are visible in map and reduce).
    pub fn with_captures(mut self, names: &[String]) -> Self {
        self.captures.extend(names.iter().cloned());
        self
    }

    pub fn declare_capture(&mut self, name: &str) {
        if !self.captures.iter().any(|c| c == name) {
            self.captures.push(name.to_owned());
        }
    }

    /// From now on `${shell.output}` (the previous shell step's output) exists.
    pub fn after_shell_step(&mut self) {
        self.shell = true;
    }

    /// From now on `${validation.*}` (the last validation result) exists.
    pub fn with_validation(mut self) -> Self {
        self.validation = true;
        self
    }

    pub fn captures(&self) -> &[String] {
        &self.captures
    }

    pub fn is_reserved(name: &str) -> bool {
        RESERVED.contains(&name)
    }

    fn steps(&self) -> bool {
        matches!(
            self.part,
            Part::Setup | Part::Map | Part::Reduce | Part::Merge
        )
    }

    /// Is `root` a runner variable here?
    pub fn knows(&self, root: &str) -> bool {
        if ALWAYS.contains(&root) {
            return true;
        }
        let part_roots: &[&str] = match self.part {
            Part::Env | Part::Setup => &[],
            Part::ItemId => &["item"],
            Part::Map => ITEM,
            Part::Reduce => &["map"],
            Part::Merge => &["merge"],
        };
        part_roots.contains(&root)
            || (root == "shell" && self.steps() && (self.shell || self.has_capture("shell")))
            || (root == "validation" && self.steps() && self.validation)
            || (self.steps() && self.has_capture(root))
    }

    fn has_capture(&self, name: &str) -> bool {
        self.captures.iter().any(|c| c == name)
    }

    /// Whether the path below a known root can exist: `Err(reason)` for `${map.totl}`,
    /// `${job.name}`, `${item_id.x}`, `${env}`...
    pub fn check(&self, var: &VarRef) -> Result<(), String> {
        let first = match var.path.first() {
            Some(PathSeg::Key(k)) => Some(k.as_str()),
            _ => None,
        };
        let keys = |root: &str, allowed: &[&str], deeper: bool| -> Result<(), String> {
            match first {
                Some(k) if allowed.contains(&k) && (deeper || var.path.len() == 1) => Ok(()),
                Some(k) if allowed.contains(&k) => {
                    Err(format!("`${{{root}.{k}}}` has no fields below it"))
                }
                _ => Err(format!(
                    "`${{{var}}}` does not exist: `{root}` has only {}",
                    allowed
                        .iter()
                        .map(|k| format!("`{root}.{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        };
        match var.root.as_str() {
            "item_id" | "item_index" | "item_json" | "attempt" if !var.path.is_empty() => Err(
                format!("`${{{}}}` is a single value, it has no fields", var.root),
            ),
            "job" => keys("job", &["id"], false),
            "workflow" => keys("workflow", &["name"], false),
            "env" => match var.path.as_slice() {
                [PathSeg::Key(_)] => Ok(()),
                _ => Err(format!(
                    "`${{{var}}}`: write `${{env.NAME}}` for the environment variable NAME"
                )),
            },
            "map" => match first {
                Some("results") => Ok(()),
                _ => keys("map", MAP_KEYS, false),
            },
            "merge" => keys("merge", MERGE_KEYS, false),
            "shell" if !self.has_capture("shell") || self.shell => keys("shell", SHELL_KEYS, false),
            "validation" => match first {
                Some(k) if VALIDATION_DEEP_KEYS.contains(&k) => Ok(()),
                _ => keys("validation", VALIDATION_KEYS, false),
            },
            _ => Ok(()),
        }
    }

    /// A hint listing what may be used here, appended to unknown-variable errors.
    pub fn hint(&self) -> String {
        let mut names: Vec<String> = ALWAYS.iter().map(|s| format!("{s}.*")).collect();
        match self.part {
            Part::Env | Part::Setup => {}
            Part::ItemId => names.insert(0, "item".into()),
            Part::Map => names
                .splice(0..0, ITEM.iter().map(|s| s.to_string()))
                .for_each(drop),
            Part::Reduce => names.insert(
                0,
                "map.total/successful/failed/completed/success_rate/results/results_json/results_file"
                    .into(),
            ),
            Part::Merge => names.insert(
                0,
                "merge.worktree/worktree_path/source_branch/target_branch/session_id".into(),
            ),
        }
        if self.steps() && self.shell {
            names.push("shell.output/stderr".into());
        }
        if self.steps() && self.validation {
            names.push(format!("validation.{}", VALIDATION_KEYS.join("/")));
        }
        if self.steps() {
            names.extend(self.captures.iter().filter(|c| *c != "shell").cloned());
        }
        format!(" (variables here: {})", names.join(", "))
    }

    /// Why `${validation...}` is unknown here, when it is.
    pub fn validation_hint(&self) -> Option<&'static str> {
        (!self.validation).then_some(
            "`${validation.*}` is the result of a step's `validate:`, known only in its `on_incomplete` handlers",
        )
    }

    /// Why `${shell...}` is unknown here, when it is (the first step has no previous one).
    pub fn shell_hint(&self) -> Option<&'static str> {
        (self.steps() && !self.shell).then_some(
            "`${shell.output}` is the output of the previous shell step of the same phase (or, in `on_failure`, of the failed step); the first step has none",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(root: &str, keys: &[&str]) -> VarRef {
        VarRef {
            root: root.into(),
            path: keys.iter().map(|k| PathSeg::Key(k.to_string())).collect(),
        }
    }

    #[test]
    fn roots_per_phase() {
        let map = Scope::new(Part::Map).with_captures(&["size".into()]);
        assert!(map.knows("item") && map.knows("attempt") && map.knows("size") && map.knows("env"));
        assert!(map.knows("item_index") && map.knows("item_json"));
        assert!(!map.knows("map") && !map.knows("sise") && !map.knows("shell"));
        let reduce = Scope::new(Part::Reduce);
        assert!(reduce.knows("map") && !reduce.knows("item"));
        let env = Scope::new(Part::Env).with_captures(&["x".into()]);
        assert!(!env.knows("x") && env.knows("job"));
    }

    #[test]
    fn shell_output_exists_after_a_shell_step() {
        let mut s = Scope::new(Part::Setup);
        assert!(!s.knows("shell"));
        assert!(s.shell_hint().is_some());
        s.after_shell_step();
        assert!(s.knows("shell"));
        assert!(s.check(&var("shell", &["output"])).is_ok());
        assert!(s.check(&var("shell", &["stdout"])).is_err());
    }

    #[test]
    fn validation_exists_only_in_on_incomplete() {
        let s = Scope::new(Part::Map);
        assert!(!s.knows("validation"));
        assert!(s.validation_hint().is_some());
        let s = s.with_validation();
        assert!(s.knows("validation") && s.validation_hint().is_none());
        assert!(s.check(&var("validation", &["gaps"])).is_ok());
        assert!(s.check(&var("validation", &["gaps", "auth"])).is_ok());
        assert!(s.check(&var("validation", &["completion"])).is_ok());
        assert!(s.check(&var("validation", &["completion", "x"])).is_err());
        let e = s.check(&var("validation", &["gap"])).unwrap_err();
        assert!(e.contains("validation.gaps"), "{e}");
        assert!(Scope::is_reserved("validation"));
    }

    #[test]
    fn fixed_shapes_are_checked() {
        let s = Scope::new(Part::Reduce);
        assert!(s.check(&var("map", &["success_rate"])).is_ok());
        assert!(s.check(&var("map", &["results_json"])).is_ok());
        let e = s.check(&var("map", &["succes_rate"])).unwrap_err();
        assert!(e.contains("map.success_rate"), "{e}");
        assert!(s.check(&var("job", &["name"])).is_err());
        assert!(s.check(&var("job", &["id"])).is_ok());
        assert!(s.check(&var("env", &[])).is_err());
        assert!(s.check(&var("item_id", &["x"])).is_err());
        assert!(s.check(&var("map", &["total", "x"])).is_err());
    }
}
