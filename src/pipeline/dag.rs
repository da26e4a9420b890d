//! The pipeline's graph, as pure functions: cycle detection (naming the cycle) and which
//! pending nodes to start or skip given the states of the others.

use serde::{Deserialize, Serialize};

use crate::pipeline::model::When;

/// A node's state within a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    #[default]
    Pending,
    Running,
    Completed,
    Failed,
    /// Not run: a need failed (or, for `when: on_failure`, none did).
    Skipped,
    /// Stopped by a signal or `runner stop`; resumable.
    Interrupted,
}

impl NodeState {
    /// Will not change any more in this run.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            NodeState::Completed | NodeState::Failed | NodeState::Skipped
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            NodeState::Pending => "pending",
            NodeState::Running => "running",
            NodeState::Completed => "completed",
            NodeState::Failed => "failed",
            NodeState::Skipped => "skipped",
            NodeState::Interrupted => "interrupted",
        }
    }
}

/// What the graph needs to know about a node.
#[derive(Debug, Clone)]
pub struct GraphNode {
    pub needs: Vec<usize>,
    pub when: When,
    pub priority: i64,
}

/// A cycle among `needs` (by index, first == last), if there is one. Nodes are visited in
/// order, so the cycle found is the same every time; it starts at its earliest node and
/// follows the order in which the nodes run (`a -> b`: b needs a).
pub fn find_cycle(needs: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    let n = needs.len();
    let mut mark = vec![Mark::New; n];
    for start in 0..n {
        if mark[start] != Mark::New {
            continue;
        }
        // Iterative DFS along `needs` edges: (node, next need to look at).
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = Mark::OnStack;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&dep) = needs[node].get(*next) {
                *next += 1;
                match mark[dep] {
                    Mark::New => {
                        mark[dep] = Mark::OnStack;
                        stack.push((dep, 0));
                    }
                    Mark::OnStack => {
                        // node needs dep, which is below it on the stack: the cycle is the
                        // stack from dep up to node. Reverse it into run order.
                        let from = stack.iter().position(|(s, _)| *s == dep).unwrap_or(0);
                        let mut cycle: Vec<usize> = stack[from..].iter().map(|(s, _)| *s).collect();
                        cycle.reverse();
                        let first = cycle
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, v)| **v)
                            .map(|(i, _)| i)
                            .unwrap_or(0);
                        cycle.rotate_left(first);
                        cycle.push(cycle[0]);
                        return Some(cycle);
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    None
}

/// What to do with a pending node whose needs have all ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Run(usize),
    Skip { node: usize, reason: String },
}

/// The pending nodes that can be decided now: skips first (applied in turn, since a skip
/// may decide more nodes), then the nodes to run, highest priority first (ties in file
/// order). `names` are used in skip reasons.
pub fn decide(nodes: &[GraphNode], states: &[NodeState], names: &[String]) -> Vec<Decision> {
    let mut states = states.to_vec();
    let mut out = Vec::new();
    loop {
        let mut skipped_any = false;
        for (i, node) in nodes.iter().enumerate() {
            if states[i] != NodeState::Pending {
                continue;
            }
            if !node.needs.iter().all(|&d| states[d].is_final()) {
                continue;
            }
            let bad: Vec<&str> = node
                .needs
                .iter()
                .filter(|&&d| states[d] != NodeState::Completed)
                .map(|&d| names[d].as_str())
                .collect();
            let skip = match node.when {
                When::OnSuccess if !bad.is_empty() => {
                    Some(format!("needs {} which did not complete", bad.join(", ")))
                }
                When::OnFailure if bad.is_empty() => {
                    Some("when: on_failure, and every need completed".to_owned())
                }
                _ => None,
            };
            if let Some(reason) = skip {
                states[i] = NodeState::Skipped;
                out.push(Decision::Skip { node: i, reason });
                skipped_any = true;
            }
        }
        if !skipped_any {
            break;
        }
    }
    let mut ready: Vec<usize> = (0..nodes.len())
        .filter(|&i| {
            states[i] == NodeState::Pending && nodes[i].needs.iter().all(|&d| states[d].is_final())
        })
        .collect();
    ready.sort_by_key(|&i| (std::cmp::Reverse(nodes[i].priority), i));
    out.extend(ready.into_iter().map(Decision::Run));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(needs: &[usize], when: When, priority: i64) -> GraphNode {
        GraphNode {
            needs: needs.to_vec(),
            when,
            priority,
        }
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn no_cycle_in_a_dag() {
        assert_eq!(find_cycle(&[vec![], vec![0], vec![0, 1]]), None);
    }

    #[test]
    fn a_cycle_is_named_in_run_order_from_its_first_node() {
        // 0 needs 2, 1 needs 0, 2 needs 1: 0 -> 1 -> 2 -> 0 in run order.
        assert_eq!(
            find_cycle(&[vec![2], vec![0], vec![1]]),
            Some(vec![0, 1, 2, 0])
        );
        // Two nodes needing each other, behind an unrelated one.
        assert_eq!(find_cycle(&[vec![], vec![2], vec![1]]), Some(vec![1, 2, 1]));
        assert_eq!(find_cycle(&[vec![0]]), Some(vec![0, 0]));
    }

    #[test]
    fn ready_nodes_start_by_priority_then_file_order() {
        let g = [
            node(&[], When::OnSuccess, 1),
            node(&[], When::OnSuccess, 2),
            node(&[], When::OnSuccess, 1),
            node(&[0], When::OnSuccess, 9),
        ];
        let st = [NodeState::Pending; 4];
        assert_eq!(
            decide(&g, &st, &names(4)),
            vec![Decision::Run(1), Decision::Run(0), Decision::Run(2)]
        );
    }

    #[test]
    fn a_failure_skips_dependents_transitively_but_not_always_nodes() {
        // 0 fails; 1 needs 0; 2 needs 1; 3 (always) needs 1 and 0; 4 (on_failure) needs 0.
        let g = [
            node(&[], When::OnSuccess, 1),
            node(&[0], When::OnSuccess, 1),
            node(&[1], When::OnSuccess, 1),
            node(&[0, 1], When::Always, 1),
            node(&[0], When::OnFailure, 1),
        ];
        let mut st = [NodeState::Pending; 5];
        st[0] = NodeState::Failed;
        let d = decide(&g, &st, &names(5));
        assert_eq!(
            d,
            vec![
                Decision::Skip {
                    node: 1,
                    reason: "needs n0 which did not complete".into()
                },
                Decision::Skip {
                    node: 2,
                    reason: "needs n1 which did not complete".into()
                },
                Decision::Run(3),
                Decision::Run(4),
            ]
        );
    }

    #[test]
    fn on_failure_nodes_are_skipped_when_all_went_well_and_running_needs_block() {
        let g = [
            node(&[], When::OnSuccess, 1),
            node(&[0], When::OnFailure, 1),
            node(&[0], When::Always, 1),
        ];
        let st = [NodeState::Completed, NodeState::Pending, NodeState::Pending];
        let d = decide(&g, &st, &names(3));
        assert!(matches!(d[0], Decision::Skip { node: 1, .. }));
        assert_eq!(d[1], Decision::Run(2));
        let st = [NodeState::Running, NodeState::Pending, NodeState::Pending];
        assert!(decide(&g, &st, &names(3)).is_empty());
        let st = [
            NodeState::Interrupted,
            NodeState::Pending,
            NodeState::Pending,
        ];
        assert!(decide(&g, &st, &names(3)).is_empty());
    }
}
