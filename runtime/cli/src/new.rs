//! `hearsay new NAME -lang LANG`: writes a handler project that builds to a component the agent
//! runs: a language's template (`sdk/template`, `sdk/LANG/template`), its SDK files, its one
//! build script and a copy of `wit/handler.wit` (for C also `wit/handler-http.wit` and the WASI
//! packages of `wit/deps/`), all compiled into this binary so a project can be made anywhere.

use crate::client::flags;
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: hearsay new NAME [-lang=rust|c|python|js] [-dir=DIR]

Writes a new handler project named NAME into DIR (default ./NAME): the source of a handler
that answers every query with its payload and logs every other event, the language's SDK,
the WIT contract and build.sh, the one command that builds it into NAME.wasm (installing
the language's tools the first time). NAME: a lowercase letter, then lowercase letters,
digits, '-' or '_' (at most 64).

Languages:
  rust     cargo and the wasm32-wasip2 target (added with rustup)
  c        clang-19 and wasi-libc (Debian packages), wasm-tools and wit-bindgen (cargo install)
  python   componentize-py (pip, into a virtualenv in the project)
  js       componentize-js and jco (npm, into the project's node_modules)";

/// One file of a project: where it goes, what it holds, whether it is a script.
struct File {
    path: &'static str,
    contents: &'static str,
    executable: bool,
}

/// A file of a project from a file of the repository (a path from the repository's root).
macro_rules! embed {
    ($path:literal, $repo:literal) => {
        File {
            path: $path,
            contents: include_str!(concat!("../../../", $repo)),
            executable: false,
        }
    };
    ($path:literal, $repo:literal, executable) => {
        File {
            path: $path,
            contents: include_str!(concat!("../../../", $repo)),
            executable: true,
        }
    };
}

/// A language: its name and the files of a new project (its own, then the contract's).
struct Lang {
    name: &'static str,
    files: &'static [File],
    wit: &'static [File],
}

impl Lang {
    fn all_files(&self) -> impl Iterator<Item = &'static File> {
        self.files.iter().chain(self.wit)
    }
}

/// Written into every project: the contract the build generates bindings from.
const WIT: File = embed!("wit/handler.wit", "wit/handler.wit");

/// The contract of C and Python projects: `WIT`, the world that imports `wasi:http` by name and
/// the WASI packages it uses (their SDKs call `wasi:http` through generated bindings).
const WIT_HTTP: &[File] = &[
    WIT,
    embed!("wit/handler-http.wit", "wit/handler-http.wit"),
    embed!("wit/deps/README.md", "wit/deps/README.md"),
    embed!("wit/deps/cli.wit", "wit/deps/cli.wit"),
    embed!("wit/deps/clocks.wit", "wit/deps/clocks.wit"),
    embed!("wit/deps/filesystem.wit", "wit/deps/filesystem.wit"),
    embed!("wit/deps/http.wit", "wit/deps/http.wit"),
    embed!("wit/deps/io.wit", "wit/deps/io.wit"),
    embed!("wit/deps/random.wit", "wit/deps/random.wit"),
    embed!("wit/deps/sockets.wit", "wit/deps/sockets.wit"),
];

#[rustfmt::skip]
const LANGS: &[Lang] = &[
    Lang {
        name: "rust",
        files: &[
            embed!("Cargo.toml", "sdk/template/Cargo.toml"),
            embed!("Cargo.lock", "sdk/template/Cargo.lock"),
            embed!("src/lib.rs", "sdk/template/src/lib.rs"),
            embed!("README.md", "sdk/template/README.md"),
            embed!(".gitignore", "sdk/template/.gitignore"),
            embed!("build.sh", "sdk/template/build.sh", executable),
            embed!("hearsay-sdk/Cargo.toml", "sdk/Cargo.toml"),
            embed!("hearsay-sdk/src/lib.rs", "sdk/src/lib.rs"),
            embed!("hearsay-sdk/src/http.rs", "sdk/src/http.rs"),
        ],
        wit: &[WIT],
    },
    Lang {
        name: "c",
        files: &[
            embed!("handle.c", "sdk/c/template/handle.c"),
            embed!("README.md", "sdk/c/template/README.md"),
            embed!(".gitignore", "sdk/c/template/.gitignore"),
            embed!("hearsay.h", "sdk/c/hearsay.h"),
            embed!("hearsay.c", "sdk/c/hearsay.c"),
            embed!("build.sh", "sdk/c/build.sh", executable),
        ],
        wit: WIT_HTTP,
    },
    Lang {
        name: "python",
        files: &[
            embed!("app.py", "sdk/python/template/app.py"),
            embed!("pyproject.toml", "sdk/python/template/pyproject.toml"),
            embed!("README.md", "sdk/python/template/README.md"),
            embed!(".gitignore", "sdk/python/template/.gitignore"),
            embed!("hearsay/__init__.py", "sdk/python/hearsay/__init__.py"),
            embed!("hearsay/_world.py", "sdk/python/hearsay/_world.py"),
            embed!("hearsay/commands.py", "sdk/python/hearsay/commands.py"),
            embed!("hearsay/kv.py", "sdk/python/hearsay/kv.py"),
            embed!("hearsay/tags.py", "sdk/python/hearsay/tags.py"),
            embed!("hearsay/http.py", "sdk/python/hearsay/http.py"),
            embed!("hearsay/py.typed", "sdk/python/hearsay/py.typed"),
            embed!("build.sh", "sdk/python/build.sh", executable),
        ],
        wit: WIT_HTTP,
    },
    Lang {
        name: "js",
        files: &[
            embed!("handler.js", "sdk/js/template/handler.js"),
            embed!("jsconfig.json", "sdk/js/template/jsconfig.json"),
            embed!("README.md", "sdk/js/template/README.md"),
            embed!(".gitignore", "sdk/js/template/.gitignore"),
            embed!("hearsay.js", "sdk/js/hearsay.js"),
            embed!("build.mjs", "sdk/js/build.mjs"),
            embed!("package.json", "sdk/js/package.json"),
            embed!("package-lock.json", "sdk/js/package-lock.json"),
            embed!("build.sh", "sdk/js/build.sh", executable),
        ],
        wit: &[WIT],
    },
];

/// The in-repo template's package name and SDK path, replaced in a new project's Cargo files.
const RUST_TEMPLATE_NAME: &str = "name = \"my-handler\"";
const RUST_TEMPLATE_SDK: &str = "hearsay-sdk = { path = \"..\" }";

/// Runs `hearsay new`.
pub(crate) fn run(args: Vec<String>) -> anyhow::Result<ExitCode> {
    let bools = ["h", "help"];
    let values = ["lang", "dir"];
    // Go's flags stop at the first operand; `hearsay new x -lang c` reads naturally, so the
    // flags after NAME are parsed too.
    let parsed = flags::parse(&args, &bools, &values).and_then(|mut p| {
        if p.args.len() > 1 {
            let after = flags::parse(&p.args[1..], &bools, &values)?;
            p.args.truncate(1);
            p.merge(after);
        }
        Ok(p)
    });
    let p = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return Ok(ExitCode::from(1));
        }
    };
    if p.get("h").is_some() || p.get("help").is_some() {
        println!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let [name] = p.args.as_slice() else {
        eprintln!("new takes one NAME\n{USAGE}");
        return Ok(ExitCode::from(1));
    };
    let lang_name = p.get("lang").unwrap_or("rust");
    let Some(lang) = lang(lang_name) else {
        eprintln!(
            "unknown language {lang_name:?}: choose one of {}\n{USAGE}",
            LANGS.iter().map(|l| l.name).collect::<Vec<_>>().join(", ")
        );
        return Ok(ExitCode::from(1));
    };
    if let Err(e) = check_name(name) {
        eprintln!("{e}\n{USAGE}");
        return Ok(ExitCode::from(1));
    }
    let dir = PathBuf::from(p.get("dir").unwrap_or(name));
    write_project(&dir, name, lang)?;
    println!(
        "Created {name} ({}) in {}.\n\nBuild it:\n  cd {} && ./build.sh    # -> {name}.wasm\n\nRun it:\n  hearsay agent -node=n1 -handler query:{name}={name}.wasm\n  hearsay query {name} hi",
        lang.name,
        dir.display(),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn lang(name: &str) -> Option<&'static Lang> {
    let name = match name {
        "javascript" => "js",
        "py" => "python",
        "rs" => "rust",
        other => other,
    };
    LANGS.iter().find(|l| l.name == name)
}

/// A name every language's tools take as a package, module and file name.
fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if first_ok && rest_ok && name.len() <= 64 {
        Ok(())
    } else {
        Err(format!(
            "invalid project name {name:?}: use a lowercase letter, then lowercase letters, digits, '-' or '_' (at most 64)"
        ))
    }
}

/// A file's contents in a project named `name`.
fn render(lang: &Lang, path: &str, contents: &str, name: &str) -> String {
    let mut text = contents.replace("{{name}}", name);
    if lang.name == "rust" && matches!(path, "Cargo.toml" | "Cargo.lock") {
        text = text.replacen(RUST_TEMPLATE_NAME, &format!("name = \"{name}\""), 1);
        text = text.replacen(
            RUST_TEMPLATE_SDK,
            "hearsay-sdk = { path = \"hearsay-sdk\" }",
            1,
        );
    }
    text
}

/// Writes the project into `dir`, which must not exist or be empty; never overwrites a file.
fn write_project(dir: &Path, name: &str, lang: &Lang) -> anyhow::Result<()> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("{} exists and cannot be read", dir.display()))?;
        anyhow::ensure!(
            entries.next().is_none(),
            "{} exists and is not empty; choose another NAME or -dir",
            dir.display()
        );
    }
    for f in lang.all_files() {
        let path = dir.join(f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(if f.executable { 0o755 } else { 0o644 });
        }
        let mut out = options
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        std::io::Write::write_all(&mut out, render(lang, f.path, f.contents, name).as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in ["x", "echo", "my-handler", "a_b9"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "9x",
            "X",
            "-x",
            "a/b",
            "..",
            "a b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_rust_project_names_its_package_and_vendored_sdk() {
        let rust = lang("rust").unwrap();
        let cargo = rust.files.iter().find(|f| f.path == "Cargo.toml").unwrap();
        let text = render(rust, cargo.path, cargo.contents, "greet");
        assert!(text.contains("name = \"greet\""), "{text}");
        assert!(text.contains("path = \"hearsay-sdk\""), "{text}");
        assert!(!text.contains("my-handler"), "{text}");
        let lock = rust.files.iter().find(|f| f.path == "Cargo.lock").unwrap();
        assert!(render(rust, lock.path, lock.contents, "greet").contains("name = \"greet\""));
    }

    /// Every file of a language's template and SDK directories is written into its projects
    /// (the template's at the top, the SDK's too, the Rust SDK's under `hearsay-sdk/`), so a
    /// file added to either is not forgotten here.
    #[test]
    fn every_template_and_sdk_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        // (language, directory, where its files go in a project, its files left out: docs).
        let dirs: [(&str, &str, &str, &[&str]); 8] = [
            ("rust", "sdk/template", "", &[]),
            ("rust", "sdk/src", "hearsay-sdk/src/", &[]),
            ("c", "sdk/c/template", "", &[]),
            ("c", "sdk/c", "", &["README.md"]),
            ("python", "sdk/python/template", "", &[]),
            ("python", "sdk/python", "", &["README.md"]),
            ("js", "sdk/js/template", "", &[]),
            ("js", "sdk/js", "", &["README.md"]),
        ];
        // Build output, installed tools and the templates (checked on their own).
        let generated = ["target/", "template/", "node_modules/", ".venv/", ".build/"];
        for (lang, dir, prefix, left_out) in dirs {
            let files = lang_files(lang);
            for entry in walk(&root.join(dir)) {
                let rel = entry.strip_prefix(root.join(dir)).unwrap();
                let rel = rel.to_string_lossy();
                if generated.iter().any(|g| rel.starts_with(g))
                    || rel.ends_with(".wasm")
                    || rel.contains("__pycache__")
                    || left_out.contains(&rel.as_ref())
                {
                    continue;
                }
                let path = format!("{prefix}{rel}");
                assert!(
                    files.contains(&path.as_str()),
                    "{lang}: {dir}/{rel} is not embedded"
                );
            }
        }
    }

    fn lang_files(name: &str) -> Vec<&'static str> {
        lang(name).unwrap().all_files().map(|f| f.path).collect()
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out
    }

    #[test]
    fn a_project_is_written_once_and_never_over_files() {
        let tmp = std::env::temp_dir().join(format!("hearsay-new-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let rust = lang("rust").unwrap();
        write_project(&tmp, "greet", rust).unwrap();
        let lib = std::fs::read_to_string(tmp.join("src/lib.rs")).unwrap();
        assert!(lib.starts_with("//! greet:"), "{lib}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(tmp.join("build.sh"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o111, 0o111, "build.sh is executable");
        }
        let err = write_project(&tmp, "greet", rust).unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
