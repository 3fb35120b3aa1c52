//! `fastfn init NAME --template RUNTIME`: writes a working function folder — a handler and its `fn.config.json` —
//! that answers `GET /NAME?name=you` once the stack serves the folder it is in.

use std::path::{Path, PathBuf};

use crate::types::Runtime;

/// The handler file and its contents for a runtime; `{name}` is the function's name.
fn handler(runtime: Runtime, name: &str) -> Result<(&'static str, String), String> {
    let (file, text) = match runtime {
        Runtime::Python => (
            "handler.py",
            "def handler(event):\n    who = event[\"query\"].get(\"name\", \"world\")\n    return {\"hello\": who, \"function\": \"{name}\"}\n",
        ),
        Runtime::Node => (
            "index.js",
            "exports.handler = async (event) => {\n  const who = event.query.name || 'world';\n  return { hello: who, function: '{name}' };\n};\n",
        ),
        Runtime::Php => (
            "handler.php",
            "<?php\nfunction handler($event) {\n    return [\"hello\" => $event[\"query\"][\"name\"] ?? \"world\", \"function\" => \"{name}\"];\n}\n",
        ),
        Runtime::Go => (
            "handler.go",
            "package main\n\nfunc Handler(event map[string]any) map[string]any {\n\tquery, _ := event[\"query\"].(map[string]any)\n\twho, _ := query[\"name\"].(string)\n\tif who == \"\" {\n\t\twho = \"world\"\n\t}\n\treturn map[string]any{\"hello\": who, \"function\": \"{name}\"}\n}\n",
        ),
        Runtime::Lua => ("handler.lua", "return function(event)\n    return { hello = event.query.name or \"world\", [\"function\"] = \"{name}\" }\nend\n"),
        Runtime::Rust => return Err("there is no rust template: this build runs python, node, php, go and lua".into()),
    };
    Ok((file, text.replace("{name}", name)))
}

/// Whether `name` is a usable function folder name: a route segment, nothing that escapes the folder.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` is not a function name: use letters, digits, `-` and `_` (at most 64, not starting with `-`)"))
    }
}

/// Writes the function into `<dir>/<name>/`; refuses to touch an existing folder. Returns the files written.
pub fn create(dir: &Path, name: &str, runtime: Runtime) -> Result<Vec<PathBuf>, String> {
    check_name(name)?;
    if !dir.is_dir() {
        return Err(format!("{} is not a folder", dir.display()));
    }
    let (file, text) = handler(runtime, name)?;
    let folder = dir.join(name);
    if folder.exists() {
        return Err(format!("{} already exists; pick another name or remove it", folder.display()));
    }
    std::fs::create_dir(&folder).map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
    let config = "{\n  \"timeout_ms\": 2500,\n  \"invoke\": { \"methods\": [\"GET\"] }\n}\n";
    let mut written = Vec::new();
    for (path, contents) in [(folder.join(file), text.as_str()), (folder.join("fn.config.json"), config)] {
        std::fs::write(&path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_escape_or_break_routes_are_refused() {
        for bad in ["", "../x", "a/b", "-x", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("hello_world-2").is_ok());
    }

    #[test]
    fn an_existing_folder_is_never_overwritten() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = create(dir.path(), "hi", Runtime::Python).expect("create");
        assert_eq!(files.len(), 2);
        std::fs::write(dir.path().join("hi/handler.py"), "mine").expect("edit");
        assert!(create(dir.path(), "hi", Runtime::Node).is_err());
        assert_eq!(std::fs::read_to_string(dir.path().join("hi/handler.py")).expect("read"), "mine");
    }
}
