//! No import circles between the top-level modules of any crate in the workspace.
//!
//! For every crate under `runtime/`, each top-level module (`src/x.rs` or `src/x/`) gets an
//! edge to every other top-level module its code names: `crate::y`, `super::y` from the
//! module's own root file, and names the crate root re-exports from `y` (`crate::Name` after
//! `pub use y::Name` in `lib.rs`). Comments and `#[cfg(test)] mod tests` blocks are left out
//! (tests may reach any layer). A circle fails the test with the path around it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without comments and without its `#[cfg(test)]` modules (a `mod x { .. }`
/// block, matched by braces, or a `mod x;` line).
fn code(text: &str) -> String {
    let text: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = rest[at + "#[cfg(test)]".len()..].trim_start();
        if !after.starts_with("mod ") {
            out.push_str("#[cfg(test)]");
            rest = &rest[at + "#[cfg(test)]".len()..];
            continue;
        }
        let open = after.find(['{', ';']).unwrap_or(after.len());
        if after[open..].starts_with(';') {
            rest = &after[open + 1..];
            continue;
        }
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Identifiers that follow `prefix` in `code` (`crate::` → `node`, `Node`, ...), including
/// those inside a `crate::{a, b::c}` group.
fn names_after(code: &str, prefix: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (i, _) in code.match_indices(prefix) {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            out.extend(
                group[..end]
                    .split(',')
                    .map(|p| ident(p.trim()))
                    .filter(|n| !n.is_empty()),
            );
        } else {
            out.push(ident(rest));
        }
    }
    out
}

/// The module graph of the crate whose sources are in `src`.
fn graph(src: &Path) -> Graph {
    let root = ["lib.rs", "main.rs"]
        .iter()
        .map(|f| src.join(f))
        .find(|p| p.exists());
    let modules: BTreeSet<String> = std::fs::read_dir(src)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let name = p.file_stem()?.to_str()?.to_owned();
            let is_mod = if p.is_dir() {
                name != "bin"
            } else {
                p.extension().is_some_and(|x| x == "rs") && name != "lib" && name != "main"
            };
            is_mod.then_some(name)
        })
        .collect();
    // `pub use y::{A, B}` at the crate root: A and B belong to y.
    let mut reexports: BTreeMap<String, String> = BTreeMap::new();
    if let Some(root) = &root {
        let text = code(&std::fs::read_to_string(root).unwrap_or_default());
        for stmt in text.split(';') {
            let stmt = stmt.trim();
            let Some(path) = stmt.strip_prefix("pub use ") else {
                continue;
            };
            let path = path.strip_prefix("crate::").unwrap_or(path);
            let Some((module, rest)) = path.split_once("::") else {
                continue;
            };
            if !modules.contains(module) {
                continue;
            }
            let rest = rest.trim_start_matches('{').trim_end_matches('}');
            for name in rest.split(',') {
                let name = name.rsplit("::").next().unwrap_or("").trim();
                let name = name.rsplit(" as ").next().unwrap_or(name).trim();
                if !name.is_empty() {
                    reexports.insert(name.to_owned(), module.to_owned());
                }
            }
        }
    }
    let mut g: Graph = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for module in &modules {
        let mut files = Vec::new();
        let file = src.join(format!("{module}.rs"));
        if file.exists() {
            files.push(file);
        }
        rust_files(&src.join(module), &mut files);
        for f in files {
            let text = code(&std::fs::read_to_string(&f).unwrap_or_default());
            let is_module_root =
                f == src.join(format!("{module}.rs")) || f == src.join(module).join("mod.rs");
            let mut named = names_after(&text, "crate::");
            if is_module_root {
                named.extend(names_after(&text, "super::"));
            }
            for n in named {
                let target = if modules.contains(&n) {
                    Some(n)
                } else {
                    reexports.get(&n).cloned()
                };
                if let Some(t) = target.filter(|t| t != module) {
                    g.get_mut(module).expect("module").insert(t);
                }
            }
        }
    }
    g
}

/// A circle in `g`, as the path around it, if there is one.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        n: &str,
        g: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(n.to_owned(), Mark::Open);
        path.push(n.to_owned());
        for m in g.get(n).into_iter().flatten() {
            match marks.get(m.as_str()).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let start = path.iter().position(|p| p == m).expect("on the path");
                    let mut circle = path[start..].to_vec();
                    circle.push(m.clone());
                    return Some(circle);
                }
                Mark::New => {
                    if let Some(c) = visit(m, g, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(n.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for n in g.keys() {
        if marks.get(n).copied().unwrap_or(Mark::New) == Mark::New {
            if let Some(c) = visit(n, g, &mut marks, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn no_crate_has_a_module_import_circle() {
    let runtime = workspace().join("runtime");
    let mut crates = Vec::new();
    for e in std::fs::read_dir(&runtime).expect("runtime/").flatten() {
        let src = e.path().join("src");
        if src.is_dir() {
            crates.push(src);
        }
    }
    assert!(crates.len() >= 8, "found only {crates:?}");
    let mut circles = Vec::new();
    for src in &crates {
        if let Some(c) = find_cycle(&graph(src)) {
            circles.push(format!("{}: {}", src.display(), c.join(" -> ")));
        }
    }
    assert!(
        circles.is_empty(),
        "module import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_checker_sees_a_circle_it_is_shown() {
    let dir = std::env::temp_dir().join(format!("hearsay-layers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("b")).unwrap();
    std::fs::write(
        dir.join("lib.rs"),
        "mod a;\nmod b;\nmod c;\nmod d;\npub use c::Thing;\n",
    )
    .unwrap();
    std::fs::write(dir.join("d.rs"), "pub fn x() {}\n").unwrap();
    std::fs::write(
        dir.join("a.rs"),
        "use crate::b::X;\n// crate::c in a comment\n",
    )
    .unwrap();
    std::fs::write(dir.join("b/mod.rs"), "mod inner;\n").unwrap();
    std::fs::write(dir.join("b/inner.rs"), "use crate::{Thing, a};\n").unwrap();
    std::fs::write(
        dir.join("c.rs"),
        "#[cfg(test)]\nmod tests;\npub struct Thing;\n#[cfg(test)]\nmod more {\n    use crate::a;\n    fn f() { if true { crate::a::g() } }\n}\npub fn h() { crate::d::x() }\n",
    )
    .unwrap();
    let g = graph(&dir);
    assert_eq!(g["a"], BTreeSet::from(["b".to_owned()]));
    assert_eq!(g["b"], BTreeSet::from(["a".to_owned(), "c".to_owned()]));
    assert_eq!(
        g["c"],
        BTreeSet::from(["d".to_owned()]),
        "test modules and comments are not edges; code after them is"
    );
    let circle = find_cycle(&g).expect("a -> b -> a");
    assert_eq!(circle.first(), circle.last());
    assert!(circle.contains(&"a".to_owned()) && circle.contains(&"b".to_owned()));
    std::fs::write(dir.join("b/inner.rs"), "use crate::Thing;\n").unwrap();
    assert_eq!(find_cycle(&graph(&dir)), None);
    std::fs::remove_dir_all(&dir).unwrap();
}
