//! Cycles in a pipeline's dependency graph.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::pipeline::Pipeline;

/// Finds cycles in the dependency graph (edges child → parent), each reported once,
/// rotated so it starts at its smallest id. Iterative, so deep chains cannot overflow
/// the stack.
pub(crate) fn find_cycles(p: &Pipeline) -> Vec<Vec<String>> {
    // First task with each id wins; duplicates are reported elsewhere.
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for t in &p.tasks {
        graph
            .entry(t.id.as_str())
            .or_insert_with(|| t.depends_on.keys().map(String::as_str).collect());
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    let mut mark: HashMap<&str, Mark> = graph.keys().map(|k| (*k, Mark::New)).collect();
    let mut cycles: Vec<Vec<String>> = Vec::new();
    let mut seen_cycles = HashSet::new();
    for &root in graph.keys() {
        if mark[root] != Mark::New {
            continue;
        }
        // Stack of (node, next edge index).
        let mut stack: Vec<(&str, usize)> = vec![(root, 0)];
        mark.insert(root, Mark::OnStack);
        while let Some(&mut (node, ref mut edge)) = stack.last_mut() {
            let parents = &graph[node];
            if *edge < parents.len() {
                let next = parents[*edge];
                *edge += 1;
                match mark.get(next).copied() {
                    None | Some(Mark::Done) => {}
                    Some(Mark::New) => {
                        mark.insert(next, Mark::OnStack);
                        stack.push((next, 0));
                    }
                    Some(Mark::OnStack) => {
                        let start = stack.iter().position(|(n, _)| *n == next).unwrap_or(0);
                        // Edges go child -> parent; report in dependency order (parent first).
                        let mut cycle: Vec<String> = stack[start..]
                            .iter()
                            .rev()
                            .map(|(n, _)| n.to_string())
                            .collect();
                        let min = cycle
                            .iter()
                            .enumerate()
                            .min_by(|a, b| a.1.cmp(b.1))
                            .map_or(0, |(i, _)| i);
                        cycle.rotate_left(min);
                        if seen_cycles.insert(cycle.clone()) {
                            let first = cycle[0].clone();
                            cycle.push(first);
                            cycles.push(cycle);
                        }
                    }
                }
            } else {
                mark.insert(node, Mark::Done);
                stack.pop();
            }
        }
    }
    cycles
}
