//! The shape of the code: no module of any crate of the workspace imports, directly or through
//! others, a module that imports it back, and queue-core's modules keep to their layers (values,
//! then the wire, then the handle, then operations: each uses only its own layer and those below).
//!
//! Read from the source files, as a reviewer would: a module uses another when its code names a
//! path into it (`crate::a::b`, `super::x`, or a child module `x::`). `mod x;` declarations and
//! `pub use` re-exports are not uses, and a path to an item re-exported at the crate root counts
//! as a use of the module that defines it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The module roots of the workspace: each crate's library, and this test binary.
const ROOTS: [(&str, &str); 7] = [
    ("queue-core", "queue-core/src/lib.rs"),
    ("api", "api/src/lib.rs"),
    ("worker", "worker/src/lib.rs"),
    ("loadgen", "loadgen/src/lib.rs"),
    ("bootstrap", "bootstrap/src/lib.rs"),
    ("e2e", "e2e/src/lib.rs"),
    ("e2e tests", "e2e/tests/it/main.rs"),
];

/// queue-core's layers, bottom first.
const QUEUE_CORE_LAYERS: [(&str, &[&str]); 4] = [
    (
        "values",
        &[
            "ids",
            "ids_proptest",
            "seat",
            "job",
            "event",
            "keys",
            "error",
            "settings",
            "clock",
        ],
    ),
    ("the wire", &["scripts", "reply", "wire"]),
    ("the handle", &["store", "routing"]),
    (
        "operations",
        &[
            "rate_limit",
            "enqueue",
            "process",
            "jobs",
            "job_id_key",
            "catalog",
            "deletion",
            "hold",
            "changes",
            "housekeeping",
            "workers",
            "memory",
            "metrics",
        ],
    ),
];

/// One crate's modules (by path, `""` for the root) and which modules each one uses.
struct Crate {
    uses: BTreeMap<String, BTreeSet<String>>,
}

impl Crate {
    fn read(root_file: &Path) -> Self {
        let mut files = BTreeMap::new();
        collect(root_file, String::new(), &mut files);
        let modules: BTreeSet<String> = files.keys().cloned().collect();
        let root_exports = reexports(&files[""]);
        let uses = files
            .iter()
            .map(|(module, code)| {
                let used = used_modules(module, code, &modules, &root_exports);
                (module.clone(), used)
            })
            .collect();
        Self { uses }
    }

    /// Every import circle, each as the modules along it.
    fn cycles(&self) -> Vec<Vec<String>> {
        let mut cycles = Vec::new();
        for start in self.uses.keys() {
            // A path back to `start` through modules that sort after it: each circle is found
            // once, from its first module.
            let mut stack = vec![(start.clone(), vec![start.clone()])];
            let mut seen = BTreeSet::new();
            while let Some((at, path)) = stack.pop() {
                for next in self.uses.get(&at).into_iter().flatten() {
                    if next == start {
                        cycles.push(path.clone());
                    } else if next > start && seen.insert(next.clone()) {
                        let mut longer = path.clone();
                        longer.push(next.clone());
                        stack.push((next.clone(), longer));
                    }
                }
            }
        }
        cycles
    }
}

/// The source of `file` (module `module`) and of every module it declares, by module path.
fn collect(file: &Path, module: String, files: &mut BTreeMap<String, String>) {
    let source = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let code = strip_comments(&source);
    // Children of `lib.rs`, `main.rs` and `mod.rs` sit beside them; of `x.rs`, in `x/`.
    let dir = match file.file_name().and_then(|n| n.to_str()) {
        Some("lib.rs" | "main.rs" | "mod.rs") => file.parent().map(Path::to_path_buf),
        _ => file
            .parent()
            .map(|p| p.join(file.file_stem().expect("a file name"))),
    }
    .expect("a directory");
    for child in declared_modules(&code) {
        let path = child_file(&dir, &child);
        let child_module = if module.is_empty() {
            child
        } else {
            format!("{module}::{child}")
        };
        if let Some(path) = path {
            collect(&path, child_module, files);
        }
    }
    files.insert(module, code);
}

fn child_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [
        dir.join(format!("{name}.rs")),
        dir.join(name).join("mod.rs"),
    ]
    .into_iter()
    .find(|p| p.exists())
}

/// The code without `//` comments (doc comments included), so that prose naming a module is not
/// taken for a use of it.
fn strip_comments(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            // `//` inside a string ("http://...") is rare enough here; such a line only loses
            // its tail.
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The names of `mod x;` declarations (inline `mod x { ... }` test modules are part of their
/// file).
fn declared_modules(code: &str) -> Vec<String> {
    code.lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("pub(crate) mod "))
                .or_else(|| line.strip_prefix("mod "))?;
            rest.strip_suffix(';').map(|name| name.trim().to_owned())
        })
        .collect()
}

/// Item name → defining child module, for the root's `pub use x::{A, B};` and `pub use x::A;`.
fn reexports(root: &str) -> BTreeMap<String, String> {
    let mut items = BTreeMap::new();
    for statement in root.split(';') {
        let Some(rest) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let (module, names) = match rest.split_once("::{") {
            Some((module, names)) => (module, names.trim_end_matches('}')),
            None => match rest.rsplit_once("::") {
                Some((module, name)) => (module, name),
                None => continue,
            },
        };
        for name in names.split(',') {
            let name = name.trim();
            if !name.is_empty() {
                items.insert(name.to_owned(), module.trim().to_owned());
            }
        }
    }
    items
}

/// The modules `module`'s code uses.
fn used_modules(
    module: &str,
    code: &str,
    modules: &BTreeSet<String>,
    root_exports: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    let mut parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    let mut used = BTreeSet::new();
    for line in code.lines() {
        let trimmed = line.trim();
        // Inside an inline module (`mod tests {`, at the end of a file), `super` is this module.
        if trimmed.starts_with("mod ") && trimmed.ends_with('{') {
            parent = module;
        }
        let is_declaration = !declared_modules(trimmed).is_empty();
        let is_reexport = trimmed.starts_with("pub use ") || trimmed.starts_with("pub(crate) use ");
        for path in paths(line) {
            let (base, rest) = match path.split_first() {
                Some((first, rest)) if first == "crate" => (String::new(), rest),
                Some((first, rest)) if first == "super" => (parent.to_owned(), rest),
                // A child module of this one, named bare (`drain::run`).
                Some((first, _)) if !is_declaration && !is_reexport => {
                    let child = join(module, first);
                    if modules.contains(&child) {
                        (module.to_owned(), &path[..])
                    } else {
                        continue;
                    }
                }
                _ => continue,
            };
            let target = resolve(&base, rest, modules, root_exports);
            if target != module {
                used.insert(target);
            }
        }
    }
    used
}

/// The longest module path that `base::rest...` starts with; an item named at the crate root
/// resolves to the module that defines it.
fn resolve(
    base: &str,
    rest: &[String],
    modules: &BTreeSet<String>,
    root_exports: &BTreeMap<String, String>,
) -> String {
    let mut target = base.to_owned();
    for segment in rest {
        let longer = join(&target, segment);
        if modules.contains(&longer) {
            target = longer;
        } else {
            if target.is_empty() {
                if let Some(defining) = root_exports.get(segment) {
                    return defining.clone();
                }
            }
            break;
        }
    }
    target
}

fn join(module: &str, child: &str) -> String {
    if module.is_empty() {
        child.to_owned()
    } else {
        format!("{module}::{child}")
    }
}

/// Every `a::b::c` path in a line, as its segments (a `{` group's first names included:
/// `crate::{a, b::c}` gives `crate::a` and `crate::b::c`).
fn paths(line: &str) -> Vec<Vec<String>> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut found = Vec::new();
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !is_ident(chars[i]) || (i > 0 && (is_ident(chars[i - 1]) || chars[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let mut segments = Vec::new();
        let mut j = i;
        loop {
            let start = j;
            while j < chars.len() && is_ident(chars[j]) {
                j += 1;
            }
            segments.push(chars[start..j].iter().collect::<String>());
            if chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&':') {
                j += 2;
                if chars.get(j) == Some(&'{') {
                    // A group: each entry continues the path.
                    let close = chars[j..].iter().position(|c| *c == '}').map(|p| p + j);
                    let group: String = chars[j + 1..close.unwrap_or(chars.len())].iter().collect();
                    for entry in group.split(',') {
                        let mut path = segments.clone();
                        path.extend(
                            entry
                                .trim()
                                .split("::")
                                .map(|s| s.trim().to_owned())
                                .filter(|s| !s.is_empty()),
                        );
                        found.push(path);
                    }
                    j = close.unwrap_or(chars.len());
                    segments.clear();
                    break;
                }
                if j < chars.len() && is_ident(chars[j]) {
                    continue;
                }
            }
            break;
        }
        if segments.len() > 1 {
            found.push(segments);
        }
        i = j.max(i + 1);
    }
    found
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let mut circles = Vec::new();
    for (name, root) in ROOTS {
        let krate = Crate::read(&workspace().join(root));
        assert!(
            krate.uses.len() > 1 || name == "bootstrap" || name == "e2e",
            "{name}: the scan found no modules"
        );
        for cycle in krate.cycles() {
            circles.push(format!("{name}: {}", cycle.join(" -> ")));
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn queue_core_modules_use_only_their_own_layer_and_those_below() {
    let krate = Crate::read(&workspace().join("queue-core/src/lib.rs"));
    let layer_of = |module: &str| {
        let top = module.split("::").next().unwrap_or(module);
        QUEUE_CORE_LAYERS
            .iter()
            .position(|(_, members)| members.contains(&top))
    };
    let mut wrong = Vec::new();
    for (module, used) in &krate.uses {
        if module.is_empty() {
            continue;
        }
        let Some(own) = layer_of(module) else {
            wrong.push(format!(
                "`{module}` is in no layer: add it to QUEUE_CORE_LAYERS"
            ));
            continue;
        };
        for target in used {
            match layer_of(target) {
                Some(layer) if layer <= own => {}
                Some(layer) => wrong.push(format!(
                    "`{module}` ({}) uses `{target}` ({}), a layer above it",
                    QUEUE_CORE_LAYERS[own].0, QUEUE_CORE_LAYERS[layer].0
                )),
                None => wrong.push(format!("`{module}` uses `{target}`, which is in no layer")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The scan itself: it sees the uses it must see, so that the two tests above cannot pass by
/// finding nothing.
#[test]
fn the_scan_sees_crate_super_and_child_paths() {
    let modules: BTreeSet<String> = ["", "a", "b", "b::c", "d"]
        .into_iter()
        .map(String::from)
        .collect();
    let exports = BTreeMap::from([("Thing".to_owned(), "d".to_owned())]);
    let code =
        "use crate::{a::X, b::c::Y};\nfn f() { super::a::g(); c::h(); crate::Thing::new(); }\n\
                mod tests {\nuse super::*;\n}";
    let used = used_modules("b", code, &modules, &exports);
    let expected: BTreeSet<String> = ["a", "b::c", "d"].into_iter().map(String::from).collect();
    assert_eq!(used, expected);
    let cyclic = Crate {
        uses: BTreeMap::from([
            ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
            ("b".to_owned(), BTreeSet::from(["a".to_owned()])),
        ]),
    };
    assert_eq!(cyclic.cycles(), vec![vec!["a".to_owned(), "b".to_owned()]]);
}
