//! Vocabulary shared by every module; depends on nothing else in the crate.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The languages a function can be written in. Only Python and Node have workers so far; the others are known so
/// discovery can say "not supported yet" instead of silently ignoring a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Python,
    Node,
    Php,
    Lua,
    Go,
    Rust,
}

impl Runtime {
    pub const ALL: [Runtime; 6] = [
        Runtime::Go,
        Runtime::Lua,
        Runtime::Node,
        Runtime::Php,
        Runtime::Python,
        Runtime::Rust,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Python => "python",
            Runtime::Node => "node",
            Runtime::Php => "php",
            Runtime::Lua => "lua",
            Runtime::Go => "go",
            Runtime::Rust => "rust",
        }
    }

    pub fn from_name(name: &str) -> Option<Runtime> {
        Runtime::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The runtime a handler file belongs to, by extension (case-insensitive). `.d.ts` files are type stubs.
    pub fn from_file_name(file: &str) -> Option<Runtime> {
        let lower = file.to_ascii_lowercase();
        if lower.ends_with(".d.ts") {
            return None;
        }
        let ext = lower.rsplit_once('.')?.1;
        match ext {
            "py" => Some(Runtime::Python),
            "js" | "ts" => Some(Runtime::Node),
            "php" => Some(Runtime::Php),
            "lua" => Some(Runtime::Lua),
            "go" => Some(Runtime::Go),
            "rs" => Some(Runtime::Rust),
            _ => None,
        }
    }

    /// Whether this build can run functions of this runtime.
    pub fn is_supported(self) -> bool {
        !matches!(self, Runtime::Rust)
    }

    /// Lua handlers run inside nginx: no worker process, no socket.
    pub fn in_process(self) -> bool {
        self == Runtime::Lua
    }

    /// Entry files of a folder function, in the order they are tried.
    pub fn entry_candidates(self) -> &'static [&'static str] {
        match self {
            Runtime::Python => &["handler.py", "main.py"],
            Runtime::Node => &["handler.js", "handler.ts", "index.js", "index.ts"],
            Runtime::Php => &["handler.php", "index.php"],
            Runtime::Lua => &["handler.lua", "main.lua", "index.lua"],
            Runtime::Go => &["handler.go", "main.go"],
            Runtime::Rust => &["handler.rs"],
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// HTTP methods a function route can serve (HEAD and OPTIONS are not function methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn from_token(token: &str) -> Option<Method> {
        match token.to_ascii_lowercase().as_str() {
            "get" => Some(Method::Get),
            "post" => Some(Method::Post),
            "put" => Some(Method::Put),
            "patch" => Some(Method::Patch),
            "delete" => Some(Method::Delete),
            _ => None,
        }
    }
}

/// Whether the stack runs as the developer loop or as the production service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Dev,
    Run,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Dev => "dev",
            Mode::Run => "run",
        }
    }
}

/// Stable short id of a function: FNV-1a 64 of `runtime:name`, as 16 hex chars. It names the worker and its socket,
/// so it must stay the same across rediscoveries of an unchanged function.
pub fn function_id(runtime: Runtime, name: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in runtime.as_str().bytes().chain(std::iter::once(b':')).chain(name.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// How a child process ended, in a form that serialises the same way everywhere (logs, status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "value")]
pub enum ProcessEnd {
    Exit(i32),
    Signal(i32),
}

impl ProcessEnd {
    pub fn from_status(status: std::process::ExitStatus) -> ProcessEnd {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => ProcessEnd::Exit(code),
            (None, Some(sig)) => ProcessEnd::Signal(sig),
            (None, None) => ProcessEnd::Exit(-1),
        }
    }
}

impl fmt::Display for ProcessEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessEnd::Exit(code) => write!(f, "exit code {code}"),
            ProcessEnd::Signal(sig) => match nix::sys::signal::Signal::try_from(*sig) {
                Ok(s) => write!(f, "signal {}", s.as_str()),
                Err(_) => write!(f, "signal {sig}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_ids_are_stable_and_distinct() {
        assert_eq!(function_id(Runtime::Python, "hello"), function_id(Runtime::Python, "hello"));
        assert_ne!(function_id(Runtime::Python, "hello"), function_id(Runtime::Node, "hello"));
        assert_eq!(function_id(Runtime::Python, "hello").len(), 16);
        // FNV-1a of "python:hello" — pinned so socket names never change between releases.
        assert_eq!(function_id(Runtime::Python, "hello"), "286230c62bf721cd");
    }

    #[test]
    fn runtime_from_file_names() {
        assert_eq!(Runtime::from_file_name("handler.PY"), Some(Runtime::Python));
        assert_eq!(Runtime::from_file_name("x.d.ts"), None);
        assert_eq!(Runtime::from_file_name("README.md"), None);
        assert_eq!(Runtime::from_file_name("noext"), None);
    }
}
