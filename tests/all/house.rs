//! The house as `docs/architecture.md` describes it: no import cycle
//! between the files of `src/`, none between its top-level modules (a
//! folder, or a file directly under `src/`), and `results/` imports no
//! stage, and each top-level module imports only from the modules listed
//! above it in the order the document gives. A file's imports are the
//! `crate::`, `super::` and `self::` paths it names anywhere before its
//! `#[cfg(test)] mod tests` (doc links included), and the names of a
//! `use crate::{…}`, `use super::{…}` or `use self::{…}` group; each
//! reaches the file of the longest module path it starts with.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use regex::Regex;

use crate::repo_root;

/// The top-level modules `results/` may import besides itself: the
/// leaves every stage shares. Stages (`suite`, `plan`, `provider`, `run`,
/// `report`, `compare`, `probe`, `cli`) are not among them.
const RESULTS_MAY_IMPORT: &[&str] = &["measure", "quality", "text", "fsutil"];

/// One path a file names that reaches another file.
#[derive(Debug, Clone)]
struct Import {
    /// The file naming it, relative to `src/` (`results/io.rs`).
    from: String,
    line: usize,
    /// The path as written (`super::parts::parse_in_parts`).
    path: String,
    /// The file it reaches, relative to `src/`.
    to: String,
}

impl std::fmt::Display for Import {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "src/{}:{} `{}` imports {}",
            self.from, self.line, self.path, self.to
        )
    }
}

/// Every `.rs` file under `dir`, relative to `src`, with its text.
fn sources(src: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            sources(src, &path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let rel = path.strip_prefix(src).expect("under src");
            let rel = rel.to_str().expect("UTF-8 path").replace('\\', "/");
            let text = std::fs::read_to_string(&path).expect("readable source");
            out.push((rel, text));
        }
    }
}

/// The module path of a file: `results/io.rs` is `results::io`,
/// `results/mod.rs` is `results`, `lib.rs` the crate root.
fn module_of(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_string)
        .collect();
    if parts
        .last()
        .is_some_and(|last| ["mod", "lib", "main"].contains(&last.as_str()))
    {
        parts.pop();
    }
    parts
}

/// The top-level module a file belongs to (`(crate root)` for `lib.rs`).
fn top(file: &str) -> String {
    module_of(file)
        .first()
        .cloned()
        .unwrap_or_else(|| "(crate root)".into())
}

/// `head::rest` written in the module `here`, as a path from the crate root.
fn absolute(here: &[String], head: &str, rest: &[String]) -> Vec<String> {
    match head {
        "crate" => rest.to_vec(),
        "self" => [here, rest].concat(),
        _ => {
            let mut here = here.to_vec();
            let mut rest = rest;
            while rest.first().is_some_and(|r| r == "super") {
                rest = &rest[1..];
                here.pop();
            }
            here.pop();
            [here.as_slice(), rest].concat()
        }
    }
}

/// The items of a `use …::{…}` group, split at its own commas (not at
/// those of a nested group), each cut before its nested group.
fn group_items(group: &str) -> Vec<String> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0_usize, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
        .into_iter()
        .map(|item| {
            let head = item.trim().split('{').next().unwrap_or_default();
            head.trim_matches([':', ' ']).to_string()
        })
        .filter(|item| !item.is_empty())
        .collect()
}

/// Every import between two different files of `files` (`(path relative
/// to src/, text)`).
fn imports(files: &[(String, String)]) -> Vec<Import> {
    let reference = Regex::new(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)").unwrap();
    let group = Regex::new(r"(?s)use\s+(crate|super|self)::\{([^;]*)\};").unwrap();
    let tests = Regex::new(r"#\[cfg\(test\)\]\s*mod\s+tests").unwrap();
    let modules: BTreeMap<Vec<String>, &str> = files
        .iter()
        .map(|(file, _)| (module_of(file), file.as_str()))
        .collect();
    let resolve = |path: Vec<String>| {
        let mut path: Vec<String> = path
            .into_iter()
            .filter(|p| !p.is_empty() && p != "self")
            .collect();
        while !path.is_empty() {
            if let Some(file) = modules.get(&path) {
                return Some(*file);
            }
            path.pop();
        }
        None
    };
    let mut out = Vec::new();
    for (file, text) in files {
        let text = tests
            .find(text)
            .map_or(text.as_str(), |m| &text[..m.start()]);
        let here = module_of(file);
        let line = |at: usize| text[..at].matches('\n').count() + 1;
        let mut named: Vec<(usize, String, Vec<String>)> = reference
            .captures_iter(text)
            .map(|c| {
                let rest: Vec<String> = c[2].split("::").skip(1).map(str::to_string).collect();
                (
                    c.get(0).unwrap().start(),
                    c[0].to_string(),
                    absolute(&here, &c[1], &rest),
                )
            })
            .collect();
        for c in group.captures_iter(text) {
            for item in group_items(&c[2]) {
                let rest: Vec<String> = item.split("::").map(str::to_string).collect();
                let path = format!("{}::{item}", &c[1]);
                named.push((
                    c.get(0).unwrap().start(),
                    path,
                    absolute(&here, &c[1], &rest),
                ));
            }
        }
        for (at, path, target) in named {
            if let Some(to) = resolve(target).filter(|to| to != file) {
                out.push(Import {
                    from: file.clone(),
                    line: line(at),
                    path,
                    to: to.to_string(),
                });
            }
        }
    }
    out
}

/// The strongly connected groups of more than one node of `edges`
/// (Tarjan's algorithm), each sorted, in order of their first node.
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    #[derive(Default)]
    struct Walk<'a> {
        next: usize,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(v: &'a str, edges: &'a BTreeMap<String, BTreeSet<String>>, walk: &mut Walk<'a>) {
        walk.index.insert(v, walk.next);
        walk.low.insert(v, walk.next);
        walk.next += 1;
        walk.stack.push(v);
        for w in edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !walk.index.contains_key(w) {
                visit(w, edges, walk);
                let low = walk.low[v].min(walk.low[w]);
                walk.low.insert(v, low);
            } else if walk.stack.contains(&w) {
                let low = walk.low[v].min(walk.index[w]);
                walk.low.insert(v, low);
            }
        }
        if walk.low[v] == walk.index[v] {
            let mut group = Vec::new();
            while let Some(w) = walk.stack.pop() {
                group.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                walk.found.push(group);
            }
        }
    }
    let mut walk = Walk::default();
    for v in edges.keys() {
        if !walk.index.contains_key(v.as_str()) {
            visit(v, edges, &mut walk);
        }
    }
    walk.found.sort();
    walk.found
}

/// What a cycle found by `node` (a file, or a top-level module) is made
/// of: one import per pair of files inside it, first as written.
fn cycle_report(
    imports: &[Import],
    node: impl Fn(&str) -> String,
    edges: &BTreeMap<String, BTreeSet<String>>,
) -> String {
    let mut out = String::new();
    for group in cycles(edges) {
        out.push_str(&format!("import cycle through {}:\n", group.join(", ")));
        let mut seen = BTreeSet::new();
        for import in imports {
            let (a, b) = (node(&import.from), node(&import.to));
            if a != b
                && group.contains(&a)
                && group.contains(&b)
                && seen.insert((&import.from, &import.to))
            {
                out.push_str(&format!("  {import}\n"));
            }
        }
    }
    out
}

/// The import graph with `node` naming each file's node; imports inside
/// one node, and from the crate root, are left out.
fn graph(imports: &[Import], node: impl Fn(&str) -> String) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for import in imports {
        let (a, b) = (node(&import.from), node(&import.to));
        if a != b && a != "(crate root)" {
            edges.entry(a).or_default().insert(b);
        }
    }
    edges
}

fn file_cycles(imports: &[Import]) -> String {
    cycle_report(imports, str::to_string, &graph(imports, str::to_string))
}

fn module_cycles(imports: &[Import]) -> String {
    cycle_report(imports, top, &graph(imports, top))
}

/// The imports of `results/` that reach a module it may not import.
fn results_imports_of_stages(imports: &[Import]) -> String {
    imports
        .iter()
        .filter(|i| top(&i.from) == "results")
        .filter(|i| {
            let to = top(&i.to);
            to != "results" && !RESULTS_MAY_IMPORT.contains(&to.as_str())
        })
        .map(|i| format!("  {i}\n"))
        .collect()
}

/// The layers `docs/architecture.md` lists, top to bottom: each numbered
/// line's backquoted module names (`1. the leaves …: \`text\`, …`).
fn documented_layers() -> Vec<Vec<String>> {
    let doc = std::fs::read_to_string(repo_root().join("docs/architecture.md"))
        .expect("docs/architecture.md");
    let item = Regex::new(r"^\d+\. ").expect("regex");
    let name = Regex::new(r"`([a-z_]+)`").expect("regex");
    let mut layers: Vec<Vec<String>> = Vec::new();
    let mut in_list = false;
    for line in doc.lines() {
        if item.is_match(line) {
            in_list = true;
            layers.push(Vec::new());
        } else if line.trim().is_empty() || !line.starts_with("   ") {
            if in_list && !layers.is_empty() && line.trim().is_empty() {
                break;
            }
            continue;
        }
        if let Some(layer) = layers.last_mut() {
            layer.extend(name.captures_iter(line).map(|c| c[1].to_string()));
        }
    }
    layers
}

/// The imports that go from a module to one on its own line of the
/// documented order or a line below it.
fn imports_against_the_order(imports: &[Import], layers: &[Vec<String>]) -> String {
    let layer_of = |module: &str| layers.iter().position(|l| l.iter().any(|m| m == module));
    imports
        .iter()
        .filter(|i| top(&i.from) != top(&i.to))
        .filter(|i| match (layer_of(&top(&i.from)), layer_of(&top(&i.to))) {
            (Some(from), Some(to)) => to >= from,
            _ => true,
        })
        .map(|i| format!("  {i}\n"))
        .collect()
}

fn house() -> Vec<Import> {
    let src = repo_root().join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    files.sort();
    let found = imports(&files);
    assert!(
        found.len() > 100,
        "{} imports read from {}",
        found.len(),
        src.display()
    );
    found
}

#[test]
fn no_import_cycle_between_files() {
    let report = file_cycles(&house());
    assert!(
        report.is_empty(),
        "files of src/ import each other:\n{report}"
    );
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let report = module_cycles(&house());
    assert!(
        report.is_empty(),
        "top-level modules import each other:\n{report}"
    );
}

#[test]
fn results_imports_no_stage() {
    let report = results_imports_of_stages(&house());
    assert!(
        report.is_empty(),
        "results/ is plain data and may import only {}:\n{report}",
        RESULTS_MAY_IMPORT.join(", ")
    );
}

/// The reader itself, on a small crate: `crate::` paths, `use crate::{…}`
/// groups (nested ones too), `self::` paths and a `super::` doc link are
/// followed; test modules are not.
#[test]
fn the_reader_finds_cycles_through_every_kind_of_path() {
    let file = |path: &str, text: &str| (path.to_string(), text.to_string());
    let mut files = vec![
        file("lib.rs", "pub mod a;\npub mod b;\npub mod results;\n"),
        file("a/mod.rs", "mod x;\nmod y;\npub use self::x::X;\n"),
        file(
            "a/x.rs",
            "use crate::{a::y::{Y, Z}, b::B};\npub struct X;\n",
        ),
        file(
            "a/y.rs",
            "//! Made into [`super::x::X`] later.\n\n#[cfg(test)]\nmod tests {\n    use crate::results::R;\n}\n",
        ),
        file("b.rs", "pub struct B;\n"),
        file("results/mod.rs", "pub struct R(crate::b::B);\n"),
    ];
    let found = imports(&files);
    assert_eq!(
        file_cycles(&found),
        "import cycle through a/x.rs, a/y.rs:\n  \
         src/a/x.rs:1 `crate::a::y` imports a/y.rs\n  \
         src/a/y.rs:1 `super::x::X` imports a/x.rs\n"
    );
    assert_eq!(module_cycles(&found), "");
    assert_eq!(
        results_imports_of_stages(&found),
        "  src/results/mod.rs:1 `crate::b::B` imports b.rs\n"
    );
    files[4].1.push_str("pub fn f(_: crate::results::R) {}\n");
    assert_eq!(
        module_cycles(&imports(&files)),
        "import cycle through b, results:\n  \
         src/b.rs:2 `crate::results::R` imports results/mod.rs\n  \
         src/results/mod.rs:1 `crate::b::B` imports b.rs\n"
    );
}

#[test]
fn every_module_imports_only_from_the_lines_above_it_in_the_documented_order() {
    let layers = documented_layers();
    let listed: BTreeSet<&str> = layers.iter().flatten().map(String::as_str).collect();
    let src = repo_root().join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|(f, _)| top(f))
        .filter(|m| m != "(crate root)")
        .collect();
    let missing: Vec<&String> = modules
        .iter()
        .filter(|m| !listed.contains(m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "modules missing from the order in docs/architecture.md: {missing:?} (layers read: {layers:?})"
    );
    let wrong = imports_against_the_order(&house(), &layers);
    assert!(
        wrong.is_empty(),
        "imports against the order docs/architecture.md gives ({layers:?}):\n{wrong}"
    );
}
