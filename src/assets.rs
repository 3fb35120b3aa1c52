//! The gateway's Lua modules, the worker programs and the nginx template are compiled into the binary, so an
//! installed `fastfn` needs no source tree. They are written into the instance's run dir at start.

use std::path::Path;

use include_dir::{include_dir, Dir};

static LUA: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/lua");
static RUNTIMES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/runtimes");
pub static NGINX_TEMPLATE: &str = include_str!("../nginx-templates/nginx.conf.tera");

/// Writes the Lua gateway to `lua_dir` and the worker programs to `runtimes_dir` (files 0644, folders 0755).
pub fn extract(lua_dir: &Path, runtimes_dir: &Path) -> std::io::Result<()> {
    write_tree(&LUA, lua_dir)?;
    write_tree(&RUNTIMES, runtimes_dir)
}

/// Tests and test helpers live beside the programs in the source tree but are not part of what runs.
fn is_test_file(name: &str) -> bool {
    name.starts_with("test_") || name.ends_with(".test.js") || name.ends_with("_spec.lua") || name.ends_with(".pyc")
}

fn write_tree(dir: &Dir<'_>, target: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o755).create(target)?;
    for file in dir.files().filter(|f| !is_test_file(&f.path().file_name().unwrap_or_default().to_string_lossy())) {
        let path = target.join(file.path().file_name().unwrap_or_default());
        std::fs::write(&path, file.contents())?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    }
    for sub in dir.dirs() {
        let name = sub.path().file_name().unwrap_or_default();
        if ["spec", "testing", "__pycache__", "node_modules"].contains(&name.to_string_lossy().as_ref()) {
            continue;
        }
        write_tree(sub, &target.join(name))?;
    }
    Ok(())
}

/// Path of a worker program inside the extracted runtimes folder.
pub fn worker_program(runtimes_dir: &Path, runtime: crate::types::Runtime) -> std::path::PathBuf {
    match runtime {
        crate::types::Runtime::Node => runtimes_dir.join("node").join("worker.js"),
        crate::types::Runtime::Php => runtimes_dir.join("php").join("worker.php"),
        crate::types::Runtime::Go => runtimes_dir.join("go").join("main.go"),
        other => runtimes_dir.join(other.as_str()).join("worker.py"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_gateway_and_workers() {
        let dir = tempfile::tempdir().expect("temp dir");
        extract(&dir.path().join("lua"), &dir.path().join("runtimes")).expect("extract");
        assert!(dir.path().join("lua/fastfn/gateway.lua").is_file());
        assert!(worker_program(&dir.path().join("runtimes"), crate::types::Runtime::Python).is_file());
        assert!(worker_program(&dir.path().join("runtimes"), crate::types::Runtime::Node).is_file());
        assert!(NGINX_TEMPLATE.contains("init_by_lua_block"));
    }
}
