//! The module graph follows the request flow, with no cycles (DESIGN.md section 3): this
//! test fails when `src/` gains an import cycle between top-level modules, and prints it.
//!
//! It does what `modcycles.py` (the review hook) does, so the two agree: for each file under
//! `src/` except `lib.rs`, `main.rs` and `bin/`, the top-level module is the first path
//! component; the text is cut at the first `#[cfg(test)]` (test modules may import anything),
//! `//` comments are dropped, and `crate::name` and `crate::{a, b::c}` references are edges
//! (nested groups are read by their braces, where the hook stops at the first `}`: a
//! `crate::{a::{b}, c}` is an edge to `a` and `c` here, never to `b`).
//! Edges between known modules form the graph; a strongly connected component of more than
//! one module is a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module name to the modules it references, with the first file naming each edge.
type Graph = BTreeMap<String, BTreeMap<String, PathBuf>>;

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_lowercase() || c == b'_'
}

fn is_ident_rest(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'
}

/// A whole lower-case identifier (`^[a-z_][a-z0-9_]*$`).
fn is_module_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && is_ident_start(b[0]) && b[1..].iter().all(|&c| is_ident_rest(c))
}

/// The comma-separated items of a `{...}` group whose opening brace is already consumed,
/// up to its matching `}`; nested groups stay inside their item.
fn top_level_items(group: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..i]);
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    Vec::new() // unclosed: not a use group
}

/// The modules `text` references through `crate::`, outside tests and comments.
fn references(text: &str) -> BTreeSet<String> {
    let text = text.find("#[cfg(test)]").map_or(text, |cut| &text[..cut]);
    let code: String = text
        .lines()
        .map(|line| line.find("//").map_or(line, |at| &line[..at]))
        .collect::<Vec<_>>()
        .join("\n");
    let bytes = code.as_bytes();
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        // `\bcrate`: not the end of a longer word.
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::{c, d}}`: the first segment of each top-level item.
            for item in top_level_items(group) {
                let name = item.trim().split("::").next().unwrap_or("").trim();
                if is_module_name(name) {
                    found.insert(name.to_owned());
                }
            }
        } else {
            let b = rest.as_bytes();
            if b.first().is_some_and(|&c| is_ident_start(c)) {
                let len = b.iter().take_while(|&&c| is_ident_rest(c)).count();
                found.insert(rest[..len].to_owned());
            }
        }
    }
    found
}

/// The graph of `src`'s top-level modules.
fn module_graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    for file in rust_files(src) {
        let rel = file.strip_prefix(src).expect("under src");
        let first = rel
            .components()
            .next()
            .expect("a path inside src")
            .as_os_str()
            .to_string_lossy()
            .into_owned();
        let top = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
        if top == "lib" || top == "main" || top == "bin" {
            continue;
        }
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let edges = graph.entry(top.clone()).or_default();
        for dep in references(&text) {
            if dep != top {
                edges.entry(dep).or_insert_with(|| rel.to_path_buf());
            }
        }
    }
    let known: BTreeSet<String> = graph.keys().cloned().collect();
    for edges in graph.values_mut() {
        edges.retain(|dep, _| known.contains(dep));
    }
    graph
}

/// Tarjan's algorithm: the strongly connected components of more than one node, each
/// sorted, in a stable order.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<&str>> {
    struct Tarjan<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<&'a str>>,
    }

    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                loop {
                    let w = self.stack.pop().expect("v is on the stack");
                    self.on_stack.remove(w);
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort_unstable();
                    self.found.push(component);
                }
            }
        }
    }

    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.found.sort();
    t.found
}

fn edges_only(graph: &Graph) -> BTreeMap<String, BTreeSet<String>> {
    graph
        .iter()
        .map(|(m, deps)| (m.clone(), deps.keys().cloned().collect()))
        .collect()
}

#[test]
fn top_level_modules_have_no_import_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    // Not vacuous: the graph is the crate's, with the flow's edges in it.
    assert!(graph.len() > 10, "modules found: {:?}", graph.keys());
    assert!(
        graph["pipeline"].contains_key("policy"),
        "pipeline -> policy: {graph:#?}"
    );
    let edges = edges_only(&graph);
    let found = cycles(&edges);
    let report: Vec<String> = found
        .iter()
        .map(|cycle| {
            let inside: Vec<String> = cycle
                .iter()
                .flat_map(|m| {
                    graph[*m]
                        .iter()
                        .filter(|(dep, _)| cycle.contains(&dep.as_str()))
                        .map(move |(dep, file)| format!("{m} -> {dep} (src/{})", file.display()))
                })
                .collect();
            format!("cycle: {}\n  {}", cycle.join(" <-> "), inside.join("\n  "))
        })
        .collect();
    assert!(
        found.is_empty(),
        "{} import cycle(s) between top-level modules:\n{}",
        found.len(),
        report.join("\n")
    );
}

#[test]
fn cycle_finder_finds_every_cycle_and_nothing_else() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", &["b"][..]),
        ("b", &["c"]),
        ("c", &["a", "d"]),
        ("d", &["e"]),
        ("e", &["d", "f"]),
        ("f", &[]),
        ("g", &["a", "f"]),
    ]
    .into_iter()
    .map(|(m, deps)| (m.to_owned(), deps.iter().map(|d| (*d).to_owned()).collect()))
    .collect();
    assert_eq!(cycles(&graph), [vec!["a", "b", "c"], vec!["d", "e"]]);

    let acyclic: BTreeMap<String, BTreeSet<String>> = [
        ("x".to_owned(), BTreeSet::from(["y".to_owned()])),
        ("y".to_owned(), BTreeSet::new()),
    ]
    .into();
    assert!(cycles(&acyclic).is_empty());
}

#[test]
fn references_are_read_as_the_hook_reads_them() {
    let text = "\
use crate::{audit, error::{ConfigError, config_path}, policy::RoutePolicy};
use crate::Auth; // a type, not a module
// use crate::commented_out;
let x = crate::verify::Verifiers::new(); // crate::also_commented
let y = mycrate::not_ours;
#[cfg(test)]
mod tests { use crate::only_in_tests; }
";
    let found: Vec<String> = references(text).into_iter().collect();
    assert_eq!(found, ["audit", "error", "policy", "verify"]);
}

#[test]
fn graph_is_read_from_files_as_the_hook_reads_them() {
    let src = std::env::temp_dir().join(format!("s2s-module-graph-{}", std::process::id()));
    let write = |rel: &str, text: &str| {
        let path = src.join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write("lib.rs", "pub mod a; use crate::b;");
    write("bin/tool.rs", "use crate::a;");
    write(
        "a.rs",
        "use crate::plugin::Keys;\n#[cfg(test)]\nuse crate::c;",
    );
    write("plugin/mod.rs", "mod keys;");
    write("plugin/keys.rs", "use crate::{a::Thing, outside};");
    write("c.rs", "use crate::a; use crate::plugin;");
    let graph = module_graph(&src);
    std::fs::remove_dir_all(&src).expect("cleanup");

    let modules: Vec<&str> = graph.keys().map(String::as_str).collect();
    assert_eq!(modules, ["a", "c", "plugin"], "lib.rs and bin/ are skipped");
    assert_eq!(
        graph["plugin"].get("a"),
        Some(&PathBuf::from("plugin/keys.rs")),
        "a file's edges belong to its top-level module; unknown modules are dropped"
    );
    assert_eq!(cycles(&edges_only(&graph)), [vec!["a", "plugin"]]);
}
