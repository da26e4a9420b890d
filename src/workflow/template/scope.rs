//! Which `${...}` variables exist where: the roots a template may name in each part of a
//! workflow. Used by validation so that a typo is caught before anything runs.

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
}

const ALWAYS: &[&str] = &["env", "job", "workflow"];
const ITEM: &[&str] = &["item", "item_id", "attempt"];
const RESERVED: &[&str] = &[
    "item", "item_id", "attempt", "env", "job", "workflow", "map",
];

#[derive(Debug, Clone)]
pub struct Scope {
    part: Part,
    captures: Vec<String>,
}

impl Scope {
    pub fn new(part: Part) -> Self {
        Scope {
            part,
            captures: Vec::new(),
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

    pub fn captures(&self) -> &[String] {
        &self.captures
    }

    pub fn is_reserved(name: &str) -> bool {
        RESERVED.contains(&name)
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
        };
        part_roots.contains(&root)
            || (self.part != Part::Env
                && self.part != Part::ItemId
                && self.captures.iter().any(|c| c == root))
    }

    /// A hint listing what may be used here, appended to unknown-variable errors.
    pub fn hint(&self) -> String {
        let mut names: Vec<String> = ALWAYS.iter().map(|s| format!("{s}.*")).collect();
        match self.part {
            Part::Env | Part::Setup => {}
            Part::ItemId => names.insert(0, "item".into()),
            Part::Map => names
                .splice(0..0, ["item".into(), "item_id".into(), "attempt".into()])
                .for_each(drop),
            Part::Reduce => names.insert(0, "map.total/successful/failed/results_file".into()),
        }
        if !matches!(self.part, Part::Env | Part::ItemId) {
            names.extend(self.captures.iter().cloned());
        }
        format!(" (variables here: {})", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_per_phase() {
        let map = Scope::new(Part::Map).with_captures(&["size".into()]);
        assert!(map.knows("item") && map.knows("attempt") && map.knows("size") && map.knows("env"));
        assert!(!map.knows("map") && !map.knows("sise"));
        let reduce = Scope::new(Part::Reduce);
        assert!(reduce.knows("map") && !reduce.knows("item"));
        let env = Scope::new(Part::Env).with_captures(&["x".into()]);
        assert!(!env.knows("x") && env.knows("job"));
    }
}
