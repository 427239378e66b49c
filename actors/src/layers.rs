//! The crate's layering, checked against its own sources (tests only).
//!
//! From the bottom: the ports and rules every part shares (`store`, `domain`, `change`,
//! `deps`, `handle`, `project_actor`, …), then the domains (`items`, `review`, `labels`,
//! …), each a service over the shared `handle::Handle`, importing only what is below it
//! or a domain that does not import it back, and at the top the supervisor (`root`) and
//! the engine (`engine`) that start them and hand the services out.

/// Domain folders: they may import the low modules and each other, without cycles.
const DOMAINS: &[&str] = &[
    "accounts",
    "analytics",
    "exports",
    "items",
    "job_control",
    "labels",
    "mailer",
    "processing",
    "projects",
    "resumable",
    "review",
    "sweeper",
    "webhooks",
];
/// What starts everything: imported by nothing below it.
const TOP: &[&str] = &["engine", "root", "lib"];

/// Each `.rs` file under `src`, as (path relative to `src`, text).
pub(crate) fn sources() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read file");
                let rel = path.strip_prefix(&root).expect("under src");
                found.push((rel.to_string_lossy().replace('\\', "/"), text));
            }
        }
    }
    found.sort();
    found
}

/// The top-level module a file belongs to (`items/service.rs` → `items`).
fn module_of(path: &str) -> String {
    let first = path.split('/').next().unwrap_or(path);
    first.trim_end_matches(".rs").to_owned()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The top-level modules a source names: `crate::x` anywhere, and the first names of
/// each `use crate::{x, y::z}` list.
fn imports(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(list) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut start = true;
            for (i, c) in list.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        rest = &list[i..];
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && is_ident(c) => {
                        let name: String = list[i..].chars().take_while(|c| is_ident(*c)).collect();
                        names.insert(name);
                        start = false;
                    }
                    c if start && !c.is_whitespace() => start = false,
                    _ => {}
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
            names.insert(name);
        }
    }
    names
}

/// Module → the modules it imports (itself left out).
fn graph() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut graph = std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
    for (path, text) in sources() {
        let module = module_of(&path);
        let used: Vec<String> = imports(&text)
            .into_iter()
            .filter(|m| *m != module)
            .collect();
        graph.entry(module).or_default().extend(used);
    }
    graph
}

#[test]
fn the_import_parser_reads_lists_and_paths() {
    let text = "use crate::{a::B, c, d::{e, f::G}};\nlet x = crate::h::i();\nuse crate::j;";
    let found: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(found, ["a", "c", "d", "h", "j"]);
}

#[test]
fn low_modules_import_no_domain_and_nothing_imports_the_top() {
    let mut wrong = Vec::new();
    for (module, used) in graph() {
        let low = !DOMAINS.contains(&module.as_str()) && !TOP.contains(&module.as_str());
        for target in used {
            if TOP.contains(&target.as_str()) && module != "engine" && module != "lib" {
                wrong.push(format!("{module} imports the top ({target})"));
            }
            if low && DOMAINS.contains(&target.as_str()) {
                wrong.push(format!("{module} (low) imports the domain {target}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports that run back up: {wrong:#?}");
}

#[test]
fn domains_import_each_other_without_cycles() {
    let graph = graph();
    // Depth-first search for a back edge, naming the cycle it closes.
    fn visit(
        node: &str,
        graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!("an import cycle: {}", cycle.join(" → "));
        }
    }
}
