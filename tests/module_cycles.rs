//! The modules of every crate in the workspace import each other without cycles.
//!
//! For each crate, every top-level module (`src/x.rs`, or `src/x/` with everything under
//! it) gets an edge to each other top-level module it names as `crate::y` (also inside
//! `use crate::{y, ..}` groups). Comments are skipped, so doc links do not count. The
//! test fails naming each cycle it finds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module -> the top-level modules it names.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Every `src/` of a crate in the workspace (those with a `Cargo.toml` beside it).
fn crate_sources(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if !path.is_dir() || name.starts_with('.') || name == "target" {
                continue;
            }
            if name == "src" && dir.join("Cargo.toml").is_file() {
                out.push(path);
            } else if name != "src" {
                dirs.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    out
}

/// The source without `//` comments (doc comments included).
fn strip_comments(src: &str) -> String {
    src.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string literal ("http://") cuts a line short; that loses at
            // most a path on the same line after it, never adds one.
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules `src` names through `crate::`.
fn named_modules(src: &str) -> BTreeSet<String> {
    let code = strip_comments(src);
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, D}`: the first segment of each item at the group's top level.
            let mut depth = 0usize;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && !c.is_whitespace() => {
                        start = false;
                        out.insert(ident_at(&group[j..]).to_string());
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident_at(rest).to_string());
        }
    }
    out
}

/// The module graph of the crate whose sources are in `src`.
fn graph_of(src: &Path) -> Graph {
    let mut graph = Graph::new();
    for file in rust_files(src) {
        let Ok(rel) = file.strip_prefix(src) else {
            continue;
        };
        let first = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let module = first.trim_end_matches(".rs").to_string();
        if matches!(module.as_str(), "lib" | "main") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let entry = graph.entry(module.clone()).or_default();
        entry.extend(named_modules(&text).into_iter().filter(|m| *m != module));
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for deps in graph.values_mut() {
        deps.retain(|d| modules.contains(d));
    }
    graph
}

/// The strongly connected components with more than one module (Tarjan).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let i = w.index.len();
        w.index.insert(v, i);
        w.low.insert(v, i);
        w.stack.push(v);
        w.on_stack.insert(v);
        let graph = w.graph;
        for u in graph.get(v).into_iter().flatten() {
            let u = u.as_str();
            if !w.index.contains_key(u) {
                visit(w, u);
                let lu = w.low[u];
                let lv = w.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lu);
            } else if w.on_stack.contains(u) {
                let iu = w.index[u];
                let lv = w.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iu);
            }
        }
        if w.low[v] == w.index[v] {
            let mut component = Vec::new();
            while let Some(u) = w.stack.pop() {
                w.on_stack.remove(u);
                component.push(u.to_string());
                if u == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                w.found.push(component);
            }
        }
    }
    let mut w = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !w.index.contains_key(v.as_str()) {
            visit(&mut w, v);
        }
    }
    w.found
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let root = workspace_root();
    let sources = crate_sources(&root);
    assert!(
        sources.len() >= 10,
        "found only {} crates under {}",
        sources.len(),
        root.display()
    );
    let mut failures = Vec::new();
    for src in &sources {
        for cycle in cycles(&graph_of(src)) {
            let rel = src.strip_prefix(&root).unwrap_or(src);
            failures.push(format!("{}: {}", rel.display(), cycle.join(" <-> ")));
        }
    }
    assert!(
        failures.is_empty(),
        "import cycles between modules:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_checker_sees_a_cycle_through_a_use_group_and_ignores_doc_links() {
    let a = "use crate::{b::Thing, c};\n/// see [`crate::d`]\nfn f() {}";
    assert_eq!(
        named_modules(a),
        ["b", "c"].into_iter().map(String::from).collect()
    );
    let mut g = Graph::new();
    g.insert("a".into(), ["b".to_string()].into());
    g.insert("b".into(), ["c".to_string()].into());
    g.insert("c".into(), ["a".to_string()].into());
    g.insert("d".into(), ["a".to_string()].into());
    assert_eq!(cycles(&g), vec![vec!["a", "b", "c"]]);
}
