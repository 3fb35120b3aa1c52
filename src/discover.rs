//! Route discovery: the one implementation that turns a functions folder into functions and routes. The gateway,
//! `status`, `doctor` and OpenAPI all read its result (through the catalog); nothing else walks the folder.
//!
//! The rules are upstream FastFN's (reference/contract.md §1; docs/routing.md says what is covered): folder functions
//! (`<name>/handler.py`, `<name>/index.js`, …), explicit function folders (`fn.config.json` with `name`, `runtime`,
//! `entrypoint` or `invoke.routes`), the runtime-grouped tree (`python/<name>/…`), versions (`<fn>/v2/` and
//! `/<name>@v2`), `fn.routes.json` manifests, and file routes (`hello.js` → `/hello`, `get.users.[id].py` →
//! `GET /users/:id`). Registration order matters for precedence: root manifest, the zero-config walk, then the
//! runtime-grouped tree.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::fnconfig::{self, FnConfig};
use crate::types::{function_id, Method, Runtime};

/// Folders a zero-config walk never enters (case-insensitive), besides names starting with `.`.
const IGNORED_DIRS: &[&str] = &["node_modules", "vendor", "__pycache__", ".fastfn", ".deps", ".rust-build", "target", "src"];
/// Deepest folder level (below the root) whose files can still be routes.
const MAX_WALK_DEPTH: usize = 6;
/// Deepest namespace nesting in the runtime-grouped tree (`python/a/b/c/handler.py`).
const MAX_NAMESPACE_DEPTH: usize = 3;
/// A folder's route manifest.
const MANIFEST: &str = "fn.routes.json";
/// File names that make a folder a single-entry function folder, whatever the runtime.
const ENTRY_MARKERS: &[&str] = &[
    "handler.py", "main.py", "handler.js", "handler.ts", "index.js", "index.ts", "handler.php", "index.php",
    "handler.lua", "main.lua", "index.lua", "handler.rs", "handler.go", "main.go",
];

/// Who claimed a route. A higher rank wins over a lower one on overlapping methods, except that a config route
/// (rank 3) replaces file routes only with `force-url`; otherwise it is added after them and serves the methods they
/// leave. Equal ranks conflict (409).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    File = 1,
    Manifest = 2,
    Config = 3,
}

/// Version folder names (`v2`, `2024-01`, `1.2.0`).
fn is_version_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub id: String,
    /// Folder name (`hello`, `api/users`) or root-relative file path for a file route (`users/get.[id].py`).
    pub name: String,
    pub runtime: Runtime,
    pub dir: PathBuf,
    pub entry: PathBuf,
    /// The `fn.config.json` of the handler's folder (defaults when there is none, or when it is invalid).
    pub config: FnConfig,
    /// Why the folder's `fn.config.json` is invalid: the function is listed with default routes and answers 503
    /// `function misconfigured` until it is fixed.
    pub config_error: Option<String>,
    /// The version label of a version folder (`node/hello/v2` → `v2`); `None` for the default version.
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Normalised pattern: `/users/:id`, `/docs/:path*`.
    pub path: String,
    pub methods: BTreeSet<Method>,
    pub function: String,
    pub rank: Rank,
    /// `force-url`: a config route that replaces lower-ranked ones instead of sharing the path with them.
    pub force: bool,
}

impl Route {
    pub fn is_dynamic(&self) -> bool {
        self.path.split('/').any(|s| s.starts_with(':'))
    }
}

#[derive(Debug, Default)]
pub struct Discovery {
    pub functions: Vec<Function>,
    pub routes: Vec<Route>,
    /// Route paths claimed by two functions at the same rank; they answer 409.
    pub conflicts: Vec<String>,
    /// Things a user should hear about but that do not stop the others from serving.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("functions folder `{}` does not exist", .0.display())]
    Missing(PathBuf),
    #[error("`{}` is not a folder", .0.display())]
    NotADir(PathBuf),
    #[error("cannot read functions folder `{}`: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
}

/// Switches that change discovery for the whole folder.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `FN_FORCE_URL`: config routes replace file routes on the same path.
    pub force_url: bool,
    /// `FN_ZERO_CONFIG_IGNORE_DIRS`: more folder names to skip (the root fn.config.json can add more).
    pub ignore_dirs: Vec<String>,
    /// `FN_RUNTIMES`: only these runtimes' functions are published (`None` = every runtime this build runs).
    pub runtimes: Option<Vec<Runtime>>,
}

/// Discovers every function under `root` (an absolute path) with default options.
#[cfg(test)]
pub fn discover(root: &Path) -> Result<Discovery, DiscoverError> {
    discover_with(root, Options::default())
}

/// Discovers every function under `root` (an absolute path).
pub fn discover_with(root: &Path, options: Options) -> Result<Discovery, DiscoverError> {
    let meta = fs::metadata(root).map_err(|_| DiscoverError::Missing(root.to_path_buf()))?;
    if !meta.is_dir() {
        return Err(DiscoverError::NotADir(root.to_path_buf()));
    }
    fs::read_dir(root).map_err(|source| DiscoverError::Read { path: root.to_path_buf(), source })?;

    let mut table = RouteTable { force_url: options.force_url, runtimes: options.runtimes.clone(), ..RouteTable::default() };
    table.ignore_dirs = options.ignore_dirs.iter().map(|d| d.to_ascii_lowercase()).collect();
    if let Ok(root_config) = table.config(root) {
        table.ignore_dirs.extend(root_config.ignore_dirs.iter().map(|d| d.to_ascii_lowercase()));
    }
    walk_zero_config(root, root, &[], 0, false, &mut table);
    let enabled: Vec<Runtime> = Runtime::ALL.into_iter().filter(|r| table.enabled(*r)).collect();
    for runtime in enabled {
        let dir = root.join(runtime.as_str());
        if dir.is_dir() {
            walk_runtime_dir(root, runtime, &dir, &[], 1, &mut table);
        }
    }
    Ok(table.finish())
}

#[derive(Default)]
struct RouteTable {
    /// `FN_FORCE_URL`: every config route wins over file routes.
    force_url: bool,
    /// Folder names skipped besides the built-in ones (lower case).
    ignore_dirs: Vec<String>,
    /// `FN_RUNTIMES`.
    runtimes: Option<Vec<Runtime>>,
    /// Each folder's fn.config.json, read once, or why it is invalid.
    configs: BTreeMap<PathBuf, Result<FnConfig, String>>,
    functions: BTreeMap<String, Function>,
    routes: Vec<Route>,
    conflicts: BTreeSet<String>,
    warnings: Vec<String>,
}

impl RouteTable {
    /// The config of a folder, or why it is invalid (warned once).
    fn config(&mut self, dir: &Path) -> Result<FnConfig, String> {
        if let Some(known) = self.configs.get(dir) {
            return known.clone();
        }
        let config = match fnconfig::read(dir) {
            Ok(config) => {
                if !config.ignored.is_empty() {
                    self.warnings.push(format!(
                        "{} in {}: not applied by this build yet: {}",
                        fnconfig::FILE_NAME,
                        dir.display(),
                        config.ignored.join(", ")
                    ));
                }
                Ok(config)
            }
            Err(e) => {
                self.warnings.push(format!("{e}; its functions answer 503 until it is fixed"));
                Err(e.to_string())
            }
        };
        self.configs.insert(dir.to_path_buf(), config.clone());
        config
    }

    /// The policy for file routes in `dir`: the `fn.config.json` overlays of the folders from the root down to `dir`
    /// (deepest wins, key by key; methods only from `dir` itself). Explicit function configs are not overlays. An
    /// invalid overlay makes everything below it misconfigured.
    fn policy(&mut self, root: &Path, dir: &Path) -> Result<FnConfig, String> {
        let mut chain = vec![root.to_path_buf()];
        if let Ok(rel) = dir.strip_prefix(root) {
            let mut at = root.to_path_buf();
            for part in rel.components() {
                at.push(part);
                chain.push(at.clone());
            }
        }
        let mut merged = FnConfig::default();
        for (i, folder) in chain.iter().enumerate() {
            let own = self.config(folder)?;
            let last = i + 1 == chain.len();
            if own.is_explicit() && !last {
                continue;
            }
            merged = merged.overlaid_by(&own);
        }
        Ok(merged)
    }

    fn add_function(&mut self, name: String, runtime: Runtime, entry: PathBuf, config: Result<FnConfig, String>) -> String {
        self.add_version(name, None, runtime, entry, config)
    }

    fn add_version(&mut self, name: String, version: Option<String>, runtime: Runtime, entry: PathBuf, config: Result<FnConfig, String>) -> String {
        let key = match &version {
            Some(label) => format!("{name}@{label}"),
            None => name.clone(),
        };
        let id = function_id(runtime, &key);
        let dir = entry.parent().map(Path::to_path_buf).unwrap_or_default();
        let (config, config_error) = match config {
            Ok(config) => (config, None),
            Err(why) => (FnConfig::default(), Some(why)),
        };
        self.functions.entry(id.clone()).or_insert_with(|| Function { id: id.clone(), name, runtime, dir, entry, config, config_error, version });
        id
    }

    /// Registers a route with upstream's precedence (contract.md §1.8): an existing higher rank keeps the path; a
    /// manifest replaces file routes; a config route replaces lower ranks only with `force`, else it is added after
    /// them (the first entry that has the method serves it); equal ranks conflict, unless exactly one config route
    /// is forced.
    fn add_route(&mut self, path: String, methods: BTreeSet<Method>, function: &str, rank: Rank, force: bool) {
        if self.conflicts.contains(&path) {
            return;
        }
        let mut replaced = Vec::new();
        for (i, existing) in self.routes.iter().enumerate() {
            if existing.path != path || existing.function == function || existing.methods.is_disjoint(&methods) {
                continue;
            }
            match existing.rank.cmp(&rank) {
                std::cmp::Ordering::Greater => return,
                std::cmp::Ordering::Less => {
                    if rank == Rank::Manifest || force {
                        replaced.push(i);
                    }
                }
                std::cmp::Ordering::Equal if rank == Rank::Config && existing.force != force => {
                    if force {
                        replaced.push(i);
                    } else {
                        return;
                    }
                }
                std::cmp::Ordering::Equal => {
                    let other = self.functions.get(&existing.function).map(|f| f.name.clone()).unwrap_or_default();
                    let this = self.functions.get(function).map(|f| f.name.clone()).unwrap_or_default();
                    self.warnings.push(format!("route `{path}` is claimed by both `{other}` and `{this}`: it answers 409 until one is renamed"));
                    self.routes.retain(|r| r.path != path);
                    self.conflicts.insert(path);
                    return;
                }
            }
        }
        for i in replaced.into_iter().rev() {
            self.routes.remove(i);
        }
        if let Some(same) = self.routes.iter_mut().find(|r| r.path == path && r.function == function) {
            same.methods.extend(methods);
            return;
        }
        self.routes.push(Route { path, methods, function: function.to_string(), rank, force });
    }

    fn finish(self) -> Discovery {
        let used: BTreeSet<&str> = self.routes.iter().map(|r| r.function.as_str()).collect();
        let functions = self.functions.values().filter(|f| used.contains(f.id.as_str())).cloned().collect();
        Discovery { functions, routes: self.routes, conflicts: self.conflicts.into_iter().collect(), warnings: self.warnings }
    }
}

/// Named entries of a folder: (files, subfolders), each sorted by name.
type Entries = (Vec<(String, PathBuf)>, Vec<(String, PathBuf)>);

fn sorted_entries(dir: &Path, table: &mut RouteTable) -> Entries {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            table.warnings.push(format!("skipped `{}`: {e}", dir.display()));
            return (files, dirs);
        }
    };
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            table.warnings.push(format!("skipped `{}`: the name is not UTF-8", entry.path().display()));
            continue;
        };
        // Follow symlinks for the kind, so a linked function folder works like a real one.
        match fs::metadata(entry.path()) {
            Ok(m) if m.is_dir() => dirs.push((name, entry.path())),
            Ok(m) if m.is_file() => files.push((name, entry.path())),
            _ => {}
        }
    }
    files.sort();
    dirs.sort();
    (files, dirs)
}

fn is_ignored_dir(name: &str) -> bool {
    name.starts_with('.') || IGNORED_DIRS.iter().any(|d| d.eq_ignore_ascii_case(name))
}

impl RouteTable {
    fn ignores(&self, name: &str) -> bool {
        is_ignored_dir(name) || self.ignore_dirs.iter().any(|d| d.eq_ignore_ascii_case(name))
    }

    /// Whether functions of this runtime are published (`FN_RUNTIMES`).
    fn enabled(&self, runtime: Runtime) -> bool {
        self.runtimes.as_ref().is_none_or(|list| list.contains(&runtime))
    }
}

fn walk_zero_config(root: &Path, dir: &Path, segments: &[String], depth: usize, mixed: bool, table: &mut RouteTable) {
    let (files, dirs) = sorted_entries(dir, table);
    // The root manifest registers before anything else; a manifest folder below the root is a leaf.
    let manifest_leaf = add_manifest_routes(root, dir, table) && depth > 0;
    let mut explicit = false;
    if depth > 0 {
        if let Ok(config) = table.config(dir) {
            if config.is_explicit() {
                match entry_file(dir, None, Some(&config)) {
                    Some(entry) => {
                        explicit = true;
                        add_explicit_function(root, dir, entry, config, table);
                    }
                    None if !mixed => {
                        table.warnings.push(format!(
                            "{} in {} names a function but the folder has no entry file: nothing there is published",
                            fnconfig::FILE_NAME,
                            dir.display()
                        ));
                        return;
                    }
                    None => {}
                }
            }
        }
    }
    let mixed = mixed || explicit || files.iter().any(|(name, _)| ENTRY_MARKERS.contains(&name.as_str()));
    for (name, path) in &files {
        add_file_route(root, segments, name, path, mixed, explicit, table);
    }
    if manifest_leaf {
        return;
    }
    if depth >= MAX_WALK_DEPTH {
        if !dirs.is_empty() {
            table.warnings.push(format!("`{}` is more than {MAX_WALK_DEPTH} levels deep: its subfolders are not scanned", dir.display()));
        }
        return;
    }
    for (name, path) in &dirs {
        if table.ignores(name) || (depth == 0 && Runtime::from_name(name).is_some()) {
            continue;
        }
        // An explicit function's version folders were registered with it.
        if explicit && is_version_name(name) && entry_file(path, None, None).is_some() {
            continue;
        }
        let mut child = segments.to_vec();
        child.push(name.clone());
        walk_zero_config(root, path, &child, depth + 1, mixed, table);
    }
}

/// A folder whose fn.config.json names a function: registered like a runtime-grouped one, unless
/// `<root>/<runtime>/<name>` also exists (that one wins).
fn add_explicit_function(root: &Path, dir: &Path, entry: PathBuf, config: FnConfig, table: &mut RouteTable) {
    let entry_name = entry.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    let Some(runtime) = config.runtime.or_else(|| Runtime::from_file_name(&entry_name)) else {
        table.warnings.push(format!("{} in {}: cannot tell the runtime of `{entry_name}`", fnconfig::FILE_NAME, dir.display()));
        return;
    };
    let name = config.name.clone().unwrap_or_else(|| dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string());
    if root.join(runtime.as_str()).join(&name).is_dir() {
        table.warnings.push(format!("`{}` and `{runtime}/{name}` define the same function: the runtime-grouped one is used", dir.display()));
        return;
    }
    register_function(root, FunctionFolder { runtime, name: &name, dir, entry, runtime_grouped: false }, Ok(config), table);
}

/// `alias_taken`: the folder is an explicit function, so its `handler`/`index`/`main` file is that function, not a
/// route of its own.
fn add_file_route(root: &Path, dir_segments: &[String], file: &str, path: &Path, mixed: bool, alias_taken: bool, table: &mut RouteTable) {
    let Some(runtime) = Runtime::from_file_name(file) else { return };
    let Some((base, _ext)) = file.rsplit_once('.') else { return };
    if base.starts_with('_') || base.ends_with(".test") || base.ends_with(".spec") {
        return;
    }
    let rel = path.strip_prefix(root).unwrap_or(path).to_string_lossy().into_owned();
    let parsed = match FileName::parse(base) {
        Ok(parsed) => parsed,
        Err(why) => {
            table.warnings.push(format!("`{rel}` is not a route: {why}"));
            return;
        }
    };
    if mixed && !parsed.explicit {
        return; // a helper next to a handler stays private
    }
    if alias_taken && parsed.method.is_none() && parsed.segments.is_empty() {
        return;
    }
    if !runtime.is_supported() {
        table.warnings.push(format!("`{rel}` is a {runtime} function, which this build cannot run yet"));
        return;
    }
    if !table.enabled(runtime) {
        return;
    }
    let mut segments = Vec::new();
    for seg in dir_segments {
        match normalize_segment(seg) {
            Ok(Some(s)) => segments.push(s),
            Ok(None) => {}
            Err(why) => {
                table.warnings.push(format!("`{rel}` is not a route: {why}"));
                return;
            }
        }
    }
    segments.extend(parsed.segments.iter().cloned());
    // Found by fuzzing: a catch-all folder (`[...slug]/x.py`) put its catch-all before the file's own segments
    // (`/:slug*/x`), a route the router cannot match as written; the file-name check only saw the file's tokens.
    if segments.iter().rev().skip(1).any(|s| s.ends_with('*')) {
        table.warnings.push(format!("`{rel}` is not a route: a catch-all `[...name]` folder must be the last part of the path"));
        return;
    }
    let dir = path.parent().unwrap_or(root);
    let config = table.policy(root, dir);
    // A method prefix names the one method; otherwise the folder's invoke.methods, else GET.
    let configured = config.as_ref().ok().and_then(|c| c.methods.clone());
    let methods: BTreeSet<Method> = match (parsed.method, configured) {
        (Some(m), _) => std::iter::once(m).collect(),
        (None, Some(configured)) => configured,
        (None, None) => std::iter::once(Method::Get).collect(),
    };
    let mut paths = vec![join_route(&segments)];
    if parsed.optional_catch_all {
        paths.push(join_route(&segments[..segments.len().saturating_sub(1)]));
    }
    let id = table.add_function(rel, runtime, path.to_path_buf(), config);
    for route in paths {
        if is_reserved(&route) {
            continue;
        }
        table.add_route(route, methods.clone(), &id, Rank::File, false);
    }
}

fn walk_runtime_dir(root: &Path, runtime: Runtime, dir: &Path, namespace: &[String], depth: usize, table: &mut RouteTable) {
    let (_, dirs) = sorted_entries(dir, table);
    for (name, path) in dirs {
        if table.ignores(&name) || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            continue;
        }
        let mut ns = namespace.to_vec();
        ns.push(name);
        let config = table.config(&path);
        match entry_file(&path, Some(runtime), config.as_ref().ok()) {
            Some(entry) => {
                let name = ns.join("/");
                register_function(root, FunctionFolder { runtime, name: &name, dir: &path, entry, runtime_grouped: true }, config, table);
            }
            None if depth < MAX_NAMESPACE_DEPTH => walk_runtime_dir(root, runtime, &path, &ns, depth + 1, table),
            None => {}
        }
    }
}

/// The entry file of a function folder: the config's `entrypoint` when it exists, else the runtime's candidates
/// (every runtime's, in the order go, lua, node, php, python, rust, when the runtime is not known yet).
fn entry_file(dir: &Path, runtime: Option<Runtime>, config: Option<&FnConfig>) -> Option<PathBuf> {
    if let Some(entry) = config.and_then(|c| c.entrypoint.as_ref()) {
        let path = dir.join(entry);
        // The entrypoint must stay inside the folder, symlinks included.
        let inside = match (path.canonicalize(), dir.canonicalize()) {
            (Ok(p), Ok(d)) => p.starts_with(d) && p.is_file(),
            _ => false,
        };
        return inside.then_some(path);
    }
    let runtimes: Vec<Runtime> = match runtime.or_else(|| config.and_then(|c| c.runtime)) {
        Some(r) => vec![r],
        None => Runtime::ALL.to_vec(),
    };
    runtimes.iter().flat_map(|r| r.entry_candidates().iter()).map(|c| dir.join(c)).find(|p| p.is_file())
}

/// Registers a function folder (runtime-grouped, or explicit by its `fn.config.json`): routes `/<name>` and
/// `/<name>/*`, or its `invoke.routes`, at the config rank; and its version folders.
/// A folder that is one function.
struct FunctionFolder<'a> {
    runtime: Runtime,
    name: &'a str,
    dir: &'a Path,
    entry: PathBuf,
    /// Found under `<root>/<runtime>/`: explicit file routes inside it are published too.
    runtime_grouped: bool,
}

fn register_function(root: &Path, folder: FunctionFolder<'_>, config: Result<FnConfig, String>, table: &mut RouteTable) {
    let FunctionFolder { runtime, name, dir, entry, runtime_grouped } = folder;
    if !table.enabled(runtime) {
        return;
    }
    if !runtime.is_supported() {
        table.warnings.push(format!("`{}` is a {runtime} function, which this build cannot run yet", dir.display()));
        return;
    }
    let segments: Vec<String> = name.split('/').filter_map(|seg| normalize_segment(seg).ok().flatten()).collect();
    let base = join_route(&segments);
    // Found by fuzzing: a function whose name has no route segment (`python/handler/main.py`, `node/_/index.js`)
    // got the default routes `/` (reserved) and `//:wildcard*`, a catch-all over every path of the site. Such a
    // function is published only at its configured `invoke.routes`.
    let defaults = if segments.is_empty() { Vec::new() } else { vec![base.clone(), format!("{base}/:wildcard*")] };
    let (routes, methods, force) = match &config {
        Ok(c) if !c.routes.is_empty() => (c.routes.clone(), c.methods.clone(), c.force_url),
        Ok(c) => (defaults, c.methods.clone(), c.force_url),
        Err(_) => (defaults, None, false),
    };
    if routes.is_empty() {
        table.warnings.push(format!("`{}`: the name `{name}` gives no route (set `invoke.routes` in its {}): not published", dir.display(), fnconfig::FILE_NAME));
    }
    let methods = methods.unwrap_or_else(|| std::iter::once(Method::Get).collect());
    let force = force || table.force_url;
    let root_config = config.clone().ok();
    let id = table.add_function(name.to_string(), runtime, entry, config);
    for route in routes {
        if is_reserved(&route) {
            table.warnings.push(format!("`{name}` would claim the reserved path `{route}`: not published"));
            continue;
        }
        table.add_route(route, methods.clone(), &id, Rank::Config, force);
    }
    register_versions(runtime, name, dir, root_config.as_ref(), &methods, table);
    if runtime_grouped {
        // Explicit file routes inside the function folder publish under it (node/svc/get.status.js → /svc/status).
        add_mixed_routes(root, dir, &segments, 0, table);
    }
}

/// Method-prefixed, `[param]` and `index`-token files inside a runtime-grouped function folder and its subfolders
/// (not its version folders), as file routes under the function's path.
fn add_mixed_routes(root: &Path, dir: &Path, segments: &[String], depth: usize, table: &mut RouteTable) {
    let (files, dirs) = sorted_entries(dir, table);
    for (name, path) in &files {
        add_file_route(root, segments, name, path, true, depth == 0, table);
    }
    if depth + 1 >= MAX_WALK_DEPTH {
        return;
    }
    for (name, path) in &dirs {
        if is_ignored_dir(name) || (depth == 0 && is_version_name(name) && entry_file(path, None, None).is_some()) {
            continue;
        }
        let mut child = segments.to_vec();
        child.push(name.clone());
        add_mixed_routes(root, path, &child, depth + 1, table);
    }
}

/// Version folders of a function (`hello/v2/handler.py`): each is its own worker, reached at `/<name>@<version>`
/// (flat names only) and at its own `invoke.routes`; methods and allowed hosts fall back to the function's.
fn register_versions(runtime: Runtime, name: &str, dir: &Path, root: Option<&FnConfig>, methods: &BTreeSet<Method>, table: &mut RouteTable) {
    let (_, subdirs) = sorted_entries(dir, table);
    for (label, path) in subdirs {
        if is_ignored_dir(&label) || !is_version_name(&label) {
            continue;
        }
        let config = table.config(&path);
        let Some(entry) = entry_file(&path, Some(runtime), config.as_ref().ok()) else { continue };
        let config = config.map(|mut c| {
            if let Some(root) = root {
                c.methods = c.methods.or_else(|| root.methods.clone());
                if c.allow_hosts.is_empty() {
                    c.allow_hosts = root.allow_hosts.clone();
                }
            }
            c
        });
        let routes = config.as_ref().map(|c| c.routes.clone()).unwrap_or_default();
        let version_methods = config.as_ref().ok().and_then(|c| c.methods.clone()).unwrap_or_else(|| methods.clone());
        let id = table.add_version(name.to_string(), Some(label.clone()), runtime, entry, config);
        if !name.contains('/') {
            table.add_route(format!("/{name}@{label}"), version_methods.clone(), &id, Rank::Config, false);
        }
        for route in routes {
            table.add_route(route, version_methods.clone(), &id, Rank::Config, table.force_url);
        }
    }
}

/// `fn.routes.json`: `{"routes": {"GET,POST /things": "things.js", "/x/:id": "x.py"}}`, files relative to the
/// manifest's folder. Returns whether it published any route (such a folder is a leaf of the walk).
fn add_manifest_routes(root: &Path, dir: &Path, table: &mut RouteTable) -> bool {
    let path = dir.join(MANIFEST);
    let problem = |table: &mut RouteTable, why: String| table.warnings.push(format!("{MANIFEST} in {}: {why}", dir.display()));
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        // No manifest (a dangling symlink included, as for fn.config.json).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
        // Found by fuzzing: a manifest that is not UTF-8 (or is a folder, or a symlink loop) used to be ignored
        // without a word, so its routes silently vanished. It is reported, naming the file, like fn.config.json.
        Err(e) => {
            problem(table, format!("cannot be read ({e})"));
            return false;
        }
    };
    let parsed: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            problem(table, format!("not valid JSON ({e})"));
            return false;
        }
    };
    let Some(routes) = parsed.get("routes").and_then(|r| r.as_object()) else {
        problem(table, "it needs a `routes` object".into());
        return false;
    };
    let config = table.config(dir);
    let mut published = false;
    for (key, target) in routes {
        let (methods, raw_path) = match key.trim().split_once(' ') {
            Some((m, p)) if m.chars().all(|c| c.is_ascii_uppercase() || c == ',') => (m, p.trim()),
            _ => ("GET", key.trim()),
        };
        let methods: Option<BTreeSet<Method>> = methods.split(',').filter(|m| !m.is_empty()).map(Method::from_token).collect();
        let Some(methods) = methods.filter(|m| !m.is_empty()) else {
            problem(table, format!("`{key}` names an unknown method"));
            continue;
        };
        let route = match fnconfig::normalize_route(raw_path) {
            Ok(route) => route,
            Err(why) => {
                problem(table, format!("`{key}`: the path {why}"));
                continue;
            }
        };
        let Some(file) = target.as_str().filter(|f| !f.starts_with('/') && !f.split('/').any(|s| s == ".." || s.is_empty())) else {
            problem(table, format!("`{key}` must map to a relative file path inside the folder"));
            continue;
        };
        let file_path = dir.join(file);
        if !file_path.is_file() {
            problem(table, format!("`{key}` maps to `{file}`, which does not exist"));
            continue;
        }
        let runtime = Runtime::from_file_name(file).unwrap_or(Runtime::Node);
        if !runtime.is_supported() {
            problem(table, format!("`{file}` is a {runtime} function, which this build cannot run yet"));
            continue;
        }
        let rel = file_path.strip_prefix(root).unwrap_or(&file_path).to_string_lossy().into_owned();
        let id = table.add_function(rel, runtime, file_path, config.clone());
        table.add_route(route, methods, &id, Rank::Manifest, false);
        published = true;
    }
    published
}

/// A handler file name, split into what it says about the route.
#[derive(Debug, PartialEq, Eq)]
struct FileName {
    method: Option<Method>,
    segments: Vec<String>,
    /// A method prefix, an `index`/`handler`/`main` token or a dynamic token: published even beside an entry file.
    explicit: bool,
    /// The last segment was `[[...name]]`: also publish the route without it.
    optional_catch_all: bool,
}

impl FileName {
    fn parse(base: &str) -> Result<FileName, String> {
        let tokens = split_tokens(base)?;
        let mut rest = &tokens[..];
        let mut method = None;
        if let Some(first) = tokens.first() {
            if let Some(m) = Method::from_token(first) {
                method = Some(m);
                rest = &tokens[1..];
            }
        }
        if let Some(extra) = rest.iter().find(|t| Method::from_token(t).is_some()) {
            return Err(format!("it names a second method `{extra}`"));
        }
        let mut explicit = method.is_some();
        let mut segments = Vec::new();
        let mut optional_catch_all = false;
        for (i, token) in rest.iter().enumerate() {
            if ["index", "handler", "main"].contains(&token.to_ascii_lowercase().as_str()) {
                explicit = true;
                continue;
            }
            if token.starts_with('[') {
                explicit = true;
                if token.starts_with("[[") && i + 1 != rest.len() {
                    return Err(format!("the optional catch-all `{token}` must be last"));
                }
                optional_catch_all = token.starts_with("[[");
            }
            if let Some(seg) = normalize_segment(token)? {
                segments.push(seg);
            }
        }
        if let Some(pos) = segments.iter().position(|s| s.ends_with('*')) {
            if pos + 1 != segments.len() {
                return Err("a catch-all `[...name]` must be the last part".to_string());
            }
        }
        Ok(FileName { method, segments, explicit, optional_catch_all })
    }
}

/// Splits a file base name on `.` outside `[...]`.
fn split_tokens(base: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    for c in base.chars() {
        match c {
            '[' => {
                depth += 1;
                current.push(c);
            }
            ']' => {
                depth = depth.checked_sub(1).ok_or("it has an unmatched `]`")?;
                current.push(c);
            }
            '.' if depth == 0 => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
    }
    if depth != 0 {
        return Err("it has an unmatched `[`".to_string());
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    Ok(tokens)
}

/// Turns a folder name or file token into a route segment: `[id]` → `:id`, `[...rest]` and `[[...rest]]` →
/// `:rest*`, `index`/`handler`/`main` → nothing, and a static name → lower case with other characters as `-`.
fn normalize_segment(token: &str) -> Result<Option<String>, String> {
    let lower = token.to_ascii_lowercase();
    if ["index", "handler", "main"].contains(&lower.as_str()) {
        return Ok(None);
    }
    if let Some(inner) = lower.strip_prefix("[[...").and_then(|s| s.strip_suffix("]]")) {
        return param_name(inner, token).map(|n| Some(format!(":{n}*")));
    }
    if let Some(inner) = lower.strip_prefix("[...").and_then(|s| s.strip_suffix(']')) {
        return param_name(inner, token).map(|n| Some(format!(":{n}*")));
    }
    if let Some(inner) = lower.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return param_name(inner, token).map(|n| Some(format!(":{n}")));
    }
    if lower.contains('[') || lower.contains(']') {
        return Err(format!("`{token}` mixes brackets with text"));
    }
    let mut out = String::with_capacity(lower.len());
    for c in lower.chars() {
        let mapped = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' { c } else { '-' };
        // A run of `_` (or of other replaced characters) becomes one `-`.
        if mapped == '-' && c != '-' && out.ends_with('-') {
            continue;
        }
        out.push(mapped);
    }
    let trimmed = out.trim_matches('-');
    Ok((!trimmed.is_empty()).then(|| trimmed.to_string()))
}

fn param_name(inner: &str, token: &str) -> Result<String, String> {
    if !inner.is_empty() && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(inner.to_string())
    } else {
        Err(format!("`{token}` is not a valid parameter (letters, digits and `_` only)"))
    }
}

fn join_route(segments: &[String]) -> String {
    format!("/{}", segments.join("/"))
}

/// `/`, and anything under `/_fn` or `/console` (as whole segments), belong to fastfn itself.
pub fn is_reserved(route: &str) -> bool {
    let first = route.trim_start_matches('/').split('/').next().unwrap_or("");
    route == "/" || first.is_empty() || first == "_fn" || first == "console"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for f in files {
            let path = dir.path().join(f);
            fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
            fs::write(&path, "x").expect("write");
        }
        dir
    }

    /// The route table as `METHODS path -> runtime:name`, sorted, for compact assertions.
    fn table(files: &[&str]) -> Vec<String> {
        let dir = tree(files);
        let found = discover(dir.path()).expect("discovers");
        let mut rows: Vec<String> = found
            .routes
            .iter()
            .map(|r| {
                let f = found.functions.iter().find(|f| f.id == r.function).expect("route has function");
                let methods: Vec<&str> = r.methods.iter().map(|m| match m {
                    Method::Get => "GET",
                    Method::Post => "POST",
                    Method::Put => "PUT",
                    Method::Patch => "PATCH",
                    Method::Delete => "DELETE",
                }).collect();
                format!("{} {} -> {}:{}", methods.join(","), r.path, f.runtime, f.name)
            })
            .collect();
        rows.sort();
        rows
    }

    #[test]
    fn folder_functions_with_entry_files() {
        assert_eq!(
            table(&["hello-py/handler.py", "hello-node/index.js", "m/main.py", "h/handler.js"]),
            vec![
                "GET /h -> node:h/handler.js",
                "GET /hello-node -> node:hello-node/index.js",
                "GET /hello-py -> python:hello-py/handler.py",
                "GET /m -> python:m/main.py",
            ]
        );
    }

    #[test]
    fn runtime_grouped_tree() {
        assert_eq!(
            table(&["python/hello/handler.py", "node/api/users/index.js", "node/lib/readme.txt"]),
            vec![
                "GET /api/users -> node:api/users",
                "GET /api/users/:wildcard* -> node:api/users",
                "GET /hello -> python:hello",
                "GET /hello/:wildcard* -> python:hello",
            ]
        );
    }

    #[test]
    fn file_routes_with_methods_and_params() {
        assert_eq!(
            table(&["hello.js", "get.users.[id].py", "admin/post.users.[id].py", "blog/index.py", "docs/[...path].js", "shop/[[...slug]].js"]),
            vec![
                "GET /blog -> python:blog/index.py",
                "GET /docs/:path* -> node:docs/[...path].js",
                "GET /hello -> node:hello.js",
                "GET /shop -> node:shop/[[...slug]].js",
                "GET /shop/:slug* -> node:shop/[[...slug]].js",
                "GET /users/:id -> python:get.users.[id].py",
                "POST /admin/users/:id -> python:admin/post.users.[id].py",
            ]
        );
    }

    #[test]
    fn helpers_beside_an_entry_file_stay_private() {
        assert_eq!(
            table(&["shop/handler.js", "shop/core.js", "shop/admin/helpers.js", "shop/get.status.js"]),
            vec!["GET /shop -> node:shop/handler.js", "GET /shop/status -> node:shop/get.status.js"]
        );
    }

    #[test]
    fn ignored_files_and_folders() {
        assert_eq!(
            table(&["_private.py", "a.test.js", "b.spec.py", "types.d.ts", "node_modules/x/index.js", ".git/h.py", "__pycache__/c.py", "README.md", "ok.py"]),
            vec!["GET /ok -> python:ok.py"]
        );
    }

    #[test]
    fn segments_are_normalised_and_params_lower_cased() {
        assert_eq!(
            table(&["api/v1/My_Things/get.Some_Item.js", "sp ace/get.js", "u/[userId].py"]),
            vec![
                "GET /api/v1/my-things/some-item -> node:api/v1/My_Things/get.Some_Item.js",
                "GET /sp-ace -> node:sp ace/get.js",
                "GET /u/:userid -> python:u/[userId].py",
            ]
        );
    }

    #[test]
    fn reserved_paths_are_never_published() {
        assert!(table(&["index.js", "get.js", "console.js", "_fn/x.js", "console/get.y.py"]).iter().all(|r| !r.contains(" /console") && !r.contains(" /_fn")));
        assert!(table(&["index.js", "get.js", "console.js"]).is_empty());
    }

    #[test]
    fn underscore_folders_are_walked_and_normalised() {
        // `_fn` is not skipped as a folder: its segment normalises to `fn`, which is not reserved.
        assert_eq!(table(&["_fn/get.x.js"]), vec!["GET /fn/x -> node:_fn/get.x.js"]);
    }

    #[test]
    fn ambiguous_method_files_are_skipped_with_a_warning() {
        let dir = tree(&["get.post.items.js"]);
        let found = discover(dir.path()).expect("discovers");
        assert!(found.routes.is_empty());
        assert!(found.warnings.iter().any(|w| w.contains("second method")), "{:?}", found.warnings);
    }

    #[test]
    fn depth_limit() {
        assert!(table(&["deep/a/b/c/d/e/f/g/get.x.js"]).is_empty());
        assert_eq!(table(&["deep/a/b/c/d/get.x.js"]), vec!["GET /deep/a/b/c/d/x -> node:deep/a/b/c/d/get.x.js"]);
    }

    #[test]
    fn same_rank_claims_conflict_and_disjoint_methods_share() {
        let dir = tree(&["get.conflict.js", "get.conflict.py", "get.users.js", "post.users.py"]);
        let found = discover(dir.path()).expect("discovers");
        assert_eq!(found.conflicts, vec!["/conflict".to_string()]);
        let users: Vec<_> = found.routes.iter().filter(|r| r.path == "/users").collect();
        assert_eq!(users.len(), 2);
        assert!(found.warnings.iter().any(|w| w.contains("/conflict")));
    }

    #[test]
    fn a_config_route_shares_a_path_with_an_earlier_file_route() {
        // Without force-url the file route (registered first) keeps GET; the function serves the rest.
        let dir = tree(&["hello.js", "python/hello/handler.py"]);
        let found = discover(dir.path()).expect("discovers");
        let on_path: Vec<&Route> = found.routes.iter().filter(|r| r.path == "/hello").collect();
        assert_eq!(on_path.len(), 2);
        assert_eq!(on_path[0].rank, Rank::File, "registered first, so it serves GET");
        assert!(found.conflicts.is_empty());
    }

    #[test]
    fn unsupported_runtimes_are_reported() {
        let dir = tree(&["x.rs", "rust/legacy/handler.rs", "ok.js"]);
        let found = discover(dir.path()).expect("discovers");
        assert_eq!(found.routes.len(), 1);
        assert_eq!(found.warnings.len(), 2, "{:?}", found.warnings);
    }

    #[test]
    fn fn_config_methods_apply_to_folder_functions_and_unprefixed_files() {
        let dir = tree(&["api/handler.py", "files/a.js", "files/get.b.js"]);
        fs::write(dir.path().join("api/fn.config.json"), r#"{"invoke": {"methods": ["POST", "PUT"]}}"#).expect("write");
        fs::write(dir.path().join("files/fn.config.json"), r#"{"invoke": {"methods": "GET,POST"}}"#).expect("write");
        let found = discover(dir.path()).expect("discovers");
        let methods = |path: &str| found.routes.iter().find(|r| r.path == path).map(|r| r.methods.clone()).expect(path);
        assert_eq!(methods("/api"), [Method::Post, Method::Put].into_iter().collect());
        assert_eq!(methods("/files/a"), [Method::Get, Method::Post].into_iter().collect());
        assert_eq!(methods("/files/b"), [Method::Get].into_iter().collect(), "a method prefix wins");
    }

    #[test]
    fn an_invalid_fn_config_marks_only_its_folder() {
        let dir = tree(&["bad/handler.py", "good/handler.py"]);
        fs::write(dir.path().join("bad/fn.config.json"), r#"{"timeout_ms": "soon"}"#).expect("write");
        let found = discover(dir.path()).expect("discovers");
        assert_eq!(found.routes.len(), 2, "the broken function keeps its default route, to answer 503");
        let bad = found.functions.iter().find(|f| f.name == "bad/handler.py").expect("listed");
        assert!(bad.config_error.as_deref().is_some_and(|e| e.contains("timeout_ms")), "{:?}", bad.config_error);
        assert!(found.functions.iter().find(|f| f.name == "good/handler.py").is_some_and(|f| f.config_error.is_none()));
        assert!(found.warnings.iter().any(|w| w.contains("fn.config.json in") && w.contains("bad") && w.contains("timeout_ms")), "{:?}", found.warnings);
    }

    /// Writes `files` (path → contents) and returns the route table rows.
    fn table_with(files: &[(&str, &str)]) -> Vec<String> {
        let dir = tempfile::tempdir().expect("temp dir");
        for (f, contents) in files {
            let path = dir.path().join(f);
            fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
            fs::write(&path, contents).expect("write");
        }
        rows(&discover(dir.path()).expect("discovers"))
    }

    fn rows(found: &Discovery) -> Vec<String> {
        let mut rows: Vec<String> = found
            .routes
            .iter()
            .map(|r| {
                let f = found.functions.iter().find(|f| f.id == r.function).expect("route has function");
                let methods: Vec<String> = r.methods.iter().map(|m| format!("{m:?}").to_ascii_uppercase()).collect();
                let version = f.version.as_ref().map(|v| format!("@{v}")).unwrap_or_default();
                format!("{} {} -> {}:{}{version}", methods.join(","), r.path, f.runtime, f.name)
            })
            .collect();
        rows.sort();
        rows
    }

    #[test]
    fn explicit_function_folder_verified_case() {
        // contract.md §1.6 (verified): entrypoint + methods make one python function with the default routes.
        assert_eq!(
            table_with(&[("explicit/fn.config.json", r#"{"entrypoint":"src/api.py","invoke":{"methods":["PUT"]}}"#), ("explicit/src/api.py", "")]),
            vec!["PUT /explicit -> python:explicit", "PUT /explicit/:wildcard* -> python:explicit"]
        );
    }

    #[test]
    fn explicit_name_runtime_and_routes() {
        assert_eq!(
            table_with(&[
                ("folder/fn.config.json", r#"{"name":"api","runtime":"node","invoke":{"routes":["/v1/things","/v1/things/:id"]}}"#),
                ("folder/index.js", ""),
                ("folder/get.health.js", ""),
            ]),
            vec!["GET /folder/health -> node:folder/get.health.js", "GET /v1/things -> node:api", "GET /v1/things/:id -> node:api"],
            "the index.js alias is the function, not a route of its own; explicit file routes beside it still publish"
        );
    }

    #[test]
    fn explicit_config_without_an_entry_publishes_nothing_below_it() {
        let dir = tree(&["lonely/sub/get.x.js"]);
        fs::write(dir.path().join("lonely/fn.config.json"), r#"{"name":"lonely"}"#).expect("write");
        let found = discover(dir.path()).expect("discovers");
        assert!(found.routes.is_empty(), "{:?}", rows(&found));
        assert!(found.warnings.iter().any(|w| w.contains("no entry file")));
    }

    #[test]
    fn runtime_grouped_wins_over_an_explicit_folder_of_the_same_name() {
        let rows = table_with(&[("python/svc/handler.py", ""), ("other/fn.config.json", r#"{"name":"svc","runtime":"python"}"#), ("other/handler.py", "")]);
        assert_eq!(rows, vec!["GET /svc -> python:svc", "GET /svc/:wildcard* -> python:svc"]);
    }

    #[test]
    fn versions_get_their_own_worker_and_an_at_url() {
        assert_eq!(
            table_with(&[
                ("node/hello/handler.js", ""),
                ("node/hello/v2/handler.js", ""),
                ("node/hello/v3/handler.js", ""),
                ("node/hello/v3/fn.config.json", r#"{"invoke":{"routes":["/hello-next"]}}"#),
            ]),
            vec![
                "GET /hello -> node:hello",
                "GET /hello-next -> node:hello@v3",
                "GET /hello/:wildcard* -> node:hello",
                "GET /hello@v2 -> node:hello@v2",
                "GET /hello@v3 -> node:hello@v3",
            ]
        );
    }

    #[test]
    fn mixed_routes_inside_runtime_grouped_functions_verified_case() {
        assert_eq!(
            table_with(&[("node/svc/handler.js", ""), ("node/svc/get.status.js", ""), ("node/svc/admin/get.ping.js", ""), ("node/svc/helper.js", "")]),
            vec![
                "GET /svc -> node:svc",
                "GET /svc/:wildcard* -> node:svc",
                "GET /svc/admin/ping -> node:node/svc/admin/get.ping.js",
                "GET /svc/status -> node:node/svc/get.status.js",
            ]
        );
    }

    #[test]
    fn manifests_map_methods_and_paths_to_files() {
        assert_eq!(
            table_with(&[
                ("api/fn.routes.json", r#"{"routes":{"GET,POST /things":"things.js","/things/:id":"_one.py","DELETE /things/*":"_wipe.js"}}"#),
                ("api/things.js", ""),
                ("api/_one.py", ""),
                ("api/_wipe.js", ""),
                ("api/deeper/get.hidden.js", ""),
            ]),
            vec![
                "DELETE /things/:wildcard* -> node:api/_wipe.js",
                "GET /api/things -> node:api/things.js",
                "GET /things/:id -> python:api/_one.py",
                "GET,POST /things -> node:api/things.js",
            ],
            "a manifest folder's own files are still file routes; its subfolders are not walked"
        );
    }

    #[test]
    fn precedence_verified_case_items() {
        // contract.md §1.8 (verified): GET → file route, POST → policy function, DELETE → manifest.
        let dir = tempfile::tempdir().expect("temp dir");
        for (f, c) in [
            ("fn.routes.json", r#"{"routes":{"DELETE /items":"_items_delete.js"}}"#),
            ("_items_delete.js", ""),
            ("get.items.js", ""),
            ("python/items/handler.py", ""),
            ("python/items/fn.config.json", r#"{"invoke":{"methods":["GET","POST","DELETE"]}}"#),
        ] {
            let p = dir.path().join(f);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(&p, c).expect("write");
        }
        let found = discover(dir.path()).expect("discovers");
        let serving = |method: Method| {
            let route = found.routes.iter().find(|r| r.path == "/items" && r.methods.contains(&method)).expect("a route has it");
            found.functions.iter().find(|f| f.id == route.function).map(|f| f.name.clone()).expect("function")
        };
        assert_eq!(serving(Method::Get), "get.items.js");
        assert_eq!(serving(Method::Post), "items");
        assert_eq!(serving(Method::Delete), "_items_delete.js");
    }

    #[test]
    fn force_url_replaces_file_routes() {
        let forced_by_config = table_with(&[("get.items.js", ""), ("python/items/handler.py", ""), ("python/items/fn.config.json", r#"{"force-url":true}"#)]);
        assert_eq!(forced_by_config, vec!["GET /items -> python:items", "GET /items/:wildcard* -> python:items"]);
        let dir = tree(&["get.items.js", "python/items/handler.py"]);
        let forced = discover_with(dir.path(), Options { force_url: true, ..Options::default() }).expect("discovers");
        assert!(rows(&forced).contains(&"GET /items -> python:items".to_string()));
    }

    #[test]
    fn typical_conflicts_verified() {
        for files in [
            vec!["get.conflict.js", "get.conflict.py"],
            vec!["twoh/handler.js", "twoh/handler.py"],
            vec!["both/index.js", "both/handler.js"],
            vec!["hello.js", "hello/index.js"],
        ] {
            let dir = tree(&files);
            let found = discover(dir.path()).expect("discovers");
            assert_eq!(found.conflicts.len(), 1, "{files:?}: {:?}", rows(&found));
            assert!(found.routes.is_empty(), "{files:?}");
        }
        let dir = tree(&["node/hello/handler.js", "python/hello/handler.py"]);
        let found = discover(dir.path()).expect("discovers");
        assert_eq!(found.conflicts, vec!["/hello".to_string(), "/hello/:wildcard*".to_string()]);
    }

    #[test]
    fn overlays_apply_to_files_below_them_deepest_first() {
        let dir = tree(&["api/get.a.py", "api/b.py", "api/v1/get.c.py", "api/v1/d.py"]);
        fs::write(dir.path().join("api/fn.config.json"), r#"{"timeout_ms": 100, "invoke": {"methods": ["GET", "POST"], "allow_hosts": ["a.example"]}}"#).expect("write");
        fs::write(dir.path().join("api/v1/fn.config.json"), r#"{"timeout_ms": 200}"#).expect("write");
        let found = discover(dir.path()).expect("discovers");
        let function = |name: &str| found.functions.iter().find(|f| f.name == name).expect(name).config.clone();
        assert_eq!(function("api/get.a.py").timeout_ms, Some(100));
        assert_eq!(function("api/v1/get.c.py").timeout_ms, Some(200), "the deepest overlay wins");
        assert_eq!(function("api/v1/get.c.py").allow_hosts, vec!["a.example"], "hosts are inherited");
        // contract.md §1.7 (verified): overlay methods in the same folder apply to files without a method prefix.
        let methods = |path: &str| found.routes.iter().find(|r| r.path == path).map(|r| r.methods.clone()).expect(path);
        assert_eq!(methods("/api/b"), [Method::Get, Method::Post].into_iter().collect());
        assert_eq!(methods("/api/a"), [Method::Get].into_iter().collect());
        assert_eq!(methods("/api/v1/d"), [Method::Get].into_iter().collect(), "methods are not inherited");
    }

    #[test]
    fn extra_ignored_folders_and_enabled_runtimes() {
        let dir = tree(&["build/get.x.js", "gen/get.y.py", "keep/get.z.js", "node/svc/handler.js", "python/api/handler.py"]);
        fs::write(dir.path().join("fn.config.json"), r#"{"zero_config": {"ignore_dirs": ["build"]}}"#).expect("write");
        let options = Options { ignore_dirs: vec!["GEN".into()], runtimes: Some(vec![Runtime::Node]), ..Options::default() };
        let found = discover_with(dir.path(), options).expect("discovers");
        assert_eq!(rows(&found), vec!["GET /keep/z -> node:keep/get.z.js", "GET /svc -> node:svc", "GET /svc/:wildcard* -> node:svc"]);
    }

    /// Found by the fuzzer (fuzz/corpus/discovery/crash-*): each used to publish a malformed route or nothing
    /// without a word.
    #[test]
    fn fuzz_findings_stay_fixed() {
        // A catch-all folder is not a catch-all in the middle of a route.
        assert_eq!(table(&["[...slug]/x.py", "[...slug]/[...rest].py"]), Vec::<String>::new());
        // A function named `handler` has no default route (it was `//:wildcard*`, a catch-all over the site).
        assert_eq!(table(&["python/handler/main.py"]), Vec::<String>::new());
        assert_eq!(table_with(&[("python/handler/main.py", "x"), ("python/handler/fn.config.json", r#"{"invoke":{"routes":["/h"]}}"#)]), vec!["GET /h -> python:handler"]);
        // A manifest that is not UTF-8 is reported, naming the file.
        let dir = tree(&["x.py"]);
        fs::write(dir.path().join(MANIFEST), b"{\"routes\": {\"/a\": \"x.py\xff\"}}").expect("write");
        let found = discover(dir.path()).expect("discovers");
        let named = format!("{MANIFEST} in {}: cannot be read", dir.path().display());
        assert!(found.warnings.iter().any(|w| w.starts_with(&named)), "{:?}", found.warnings);
    }

    #[test]
    fn missing_root_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(matches!(discover(&dir.path().join("nope")), Err(DiscoverError::Missing(_))));
        let file = dir.path().join("f");
        fs::write(&file, "").expect("write");
        assert!(matches!(discover(&file), Err(DiscoverError::NotADir(_))));
    }
}
