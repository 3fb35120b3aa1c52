//! The OpenAPI 3.1 document served at `/_fn/openapi.json`, generated from the catalog (contract.md §8). Differences
//! from upstream: operationIds are made unique, conflicted routes are left out, and the control-plane paths carry
//! the `adminToken` security scheme.

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use crate::catalog::Catalog;
use crate::types::Method;

pub struct OpenApiOptions {
    pub server_url: String,
    pub include_internal: bool,
}

const CATCH_ALL: &str = "Catch-all path parameter; value may include '/' segments.";
const ERROR_REF: &str = "#/components/schemas/Error";
const FUNCTION_ERRORS: [(&str, &str); 9] = [
    ("404", "No function route matches the path"),
    ("405", "The path exists but not for this method"),
    ("409", "Ambiguous function: two functions claim the route"),
    ("413", "Request body too large"),
    ("429", "Too many requests"),
    ("500", "The handler raised an error"),
    ("502", "The function worker failed or answered badly"),
    ("503", "The function is unavailable"),
    ("504", "The function timed out"),
];
const ADMIN_ERRORS: [(&str, &str); 4] = [
    ("401", "Admin token required or invalid"),
    ("403", "Host not allowed or write refused"),
    ("404", "Admin API disabled"),
    ("429", "Rate limited or locked out after wrong tokens"),
];

/// Builds the document. Object keys come out sorted (serde_json's default map), so output is deterministic.
pub fn document(catalog: &Catalog, opts: &OpenApiOptions) -> Value {
    let mut ids = HashSet::new();
    let mut paths = Map::new();
    // Routes are walked in match order: the first route wins a method on a shared OpenAPI path, and gets the bare
    // operationId (exact routes come first). The map sorts the paths by their OpenAPI string.
    for route in &catalog.routes {
        let (path, params) = convert_path(&route.path);
        let (runtime, name) = match catalog.function(&route.function) {
            Some(f) => (f.runtime.as_str(), f.name.as_str()),
            None => ("unknown", route.function.as_str()),
        };
        let Value::Object(item) = paths.entry(path).or_insert_with(|| json!({})) else { continue };
        if !params.is_empty() && !item.contains_key("parameters") {
            item.insert("parameters".into(), Value::Array(params));
        }
        for &method in &route.methods {
            let (upper, lower) = method_names(method);
            if item.contains_key(lower) {
                continue;
            }
            let id = unique_id(&mut ids, &format!("{lower}_{runtime}_{name}"));
            let mut responses = error_responses(&FUNCTION_ERRORS);
            responses.insert(
                "200".into(),
                json!({"description": "Function response", "content": {"application/json": {"schema": {}}}}),
            );
            let mut op = json!({
                "tags": ["functions"],
                "summary": format!("{upper} {runtime}/{name}"),
                "operationId": id,
                "responses": responses,
            });
            if method != Method::Get {
                op["requestBody"] = json!({"required": false, "content": {"*/*": {"schema": {}}}});
            }
            item.insert(lower.into(), op);
        }
    }
    let mut tags = vec![json!({"name": "functions", "description": "Functions discovered in the functions folder"})];
    let mut components = json!({"schemas": {"Error": {
        "type": "object", "required": ["error"], "properties": {"error": {"type": "string"}},
    }}});
    if opts.include_internal {
        add_internal(&mut paths, &mut ids);
        tags.push(json!({"name": "internal", "description": "fastfn control plane (admin token required)"}));
        components["securitySchemes"] = json!({"adminToken": {"type": "apiKey", "in": "header", "name": "x-fn-admin-token"}});
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "fastfn API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Generated from the functions folder",
        },
        "servers": [{"url": opts.server_url}],
        "tags": tags,
        "paths": paths,
        "components": components,
    })
}

/// `/users/:id/:rest*` → `/users/{id}/{rest}` plus its path parameters.
fn convert_path(path: &str) -> (String, Vec<Value>) {
    let mut params = Vec::new();
    let converted: Vec<String> = path
        .split('/')
        .map(|seg| match seg.strip_prefix(':') {
            Some(p) => {
                let (name, catch_all) = p.strip_suffix('*').map_or((p, false), |n| (n, true));
                let mut param = json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}});
                if catch_all {
                    param["description"] = json!(CATCH_ALL);
                }
                params.push(param);
                format!("{{{name}}}")
            }
            None => seg.to_string(),
        })
        .collect();
    (converted.join("/"), params)
}

fn method_names(method: Method) -> (&'static str, &'static str) {
    match method {
        Method::Get => ("GET", "get"),
        Method::Post => ("POST", "post"),
        Method::Put => ("PUT", "put"),
        Method::Patch => ("PATCH", "patch"),
        Method::Delete => ("DELETE", "delete"),
    }
}

/// Sanitises `raw` to `[A-Za-z0-9_]` and appends `_2`, `_3`… until it is not yet used.
fn unique_id(used: &mut HashSet<String>, raw: &str) -> String {
    let base: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    let mut id = base.clone();
    let mut n = 1;
    while used.contains(&id) {
        n += 1;
        id = format!("{base}_{n}");
    }
    used.insert(id.clone());
    id
}

fn error_responses(list: &[(&str, &str)]) -> Map<String, Value> {
    list.iter()
        .map(|(code, what)| {
            let body = json!({"description": what, "content": {"application/json": {"schema": {"$ref": ERROR_REF}}}});
            (code.to_string(), body)
        })
        .collect()
}

fn add_internal(paths: &mut Map<String, Value>, ids: &mut HashSet<String>) {
    let query = |name: &str, required: bool, schema: Value| json!({"name": name, "in": "query", "required": required, "schema": schema});
    let env_params = vec![query("function", true, json!({"type": "string"})), query("runtime", false, json!({"type": "string"}))];
    let log_params = vec![
        query("lines", false, json!({"type": "integer", "minimum": 1})),
        query("file", false, json!({"type": "string", "enum": ["error", "access", "runtime"]})),
        query("fn", false, json!({"type": "string"})),
    ];
    let ops: [(&str, &str, &str, Vec<Value>, &str); 8] = [
        ("/_fn/health", "get", "Health: status for everyone, full snapshot for trusted callers", vec![], "application/json"),
        ("/_fn/catalog", "get", "The catalog the gateway serves from", vec![], "application/json"),
        ("/_fn/reload", "post", "Rediscover the functions folder and reload the gateway", vec![], "application/json"),
        ("/_fn/function-env", "get", "A function's environment, secret values hidden", env_params.clone(), "application/json"),
        ("/_fn/function-env", "put", "Update a function's environment", env_params, "application/json"),
        ("/_fn/logs", "get", "Tail a log file", log_params, "application/json"),
        ("/_fn/metrics", "get", "Metrics", vec![], "text/plain"),
        ("/_fn/openapi.json", "get", "This document", vec![], "application/json"),
    ];
    for (path, method, summary, params, content_type) in ops {
        let mut responses = error_responses(&ADMIN_ERRORS);
        responses.insert("200".into(), json!({"description": "OK", "content": {content_type: {"schema": {}}}}));
        // Health's summary is public: the token is optional there.
        let security = if path == "/_fn/health" { json!([{"adminToken": []}, {}]) } else { json!([{"adminToken": []}]) };
        let id = unique_id(ids, &format!("internal_{method}_{}", path.trim_start_matches("/_fn/")));
        let mut op = json!({"tags": ["internal"], "summary": summary, "operationId": id, "security": security, "responses": responses});
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if method == "put" {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        let item = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        item[method] = op;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{CatalogFunction, CatalogRoute};
    use crate::types::Runtime;

    fn func(id: &str, name: &str, runtime: Runtime) -> CatalogFunction {
        CatalogFunction {
            id: id.into(),
            name: name.into(),
            runtime,
            dir: "/f".into(),
            entry: "/f/h".into(),
            handler: "handler".into(),
            sockets: vec!["/s".into()],
            timeout_ms: 2500,
            max_body_bytes: 1024,
            max_concurrency: 0,
            max_queue: 0,
            queue_timeout_ms: 2500,
            overflow_status: 429,
            debug_headers: false,
            warm: false,
            strict_fs: true,
            allow_exec: false,
            idle_ttl_seconds: 0,
            allow_hosts: vec![],
            config_error: None,
            refused_edit: None,
            version: None,
            binary: None,
            build_error: None,
            deps_dir: None,
            deps_error: None,
            code_hash: String::new(),
        }
    }

    fn route(path: &str, methods: &[Method], function: &str) -> CatalogRoute {
        CatalogRoute { path: path.into(), methods: methods.iter().copied().collect(), function: function.into(), dynamic: path.contains(':') }
    }

    fn catalog() -> Catalog {
        Catalog {
            schema_version: 1,
            generated_at: "2026-01-01T00:00:00Z".into(),
            functions_root: "/f".into(),
            functions: vec![
                func("a1", "hello-py", Runtime::Python),
                func("b2", "users/get.[id].py", Runtime::Python),
                func("c3", "get.users.js", Runtime::Node),
                func("d4", "post.users.js", Runtime::Node),
                func("e5", "docs", Runtime::Node),
            ],
            routes: vec![
                route("/hello-py", &[Method::Get, Method::Post], "a1"),
                route("/users", &[Method::Get], "c3"),
                route("/users", &[Method::Post, Method::Get], "d4"),
                route("/users/:id", &[Method::Get], "b2"),
                route("/docs/:path*", &[Method::Get], "e5"),
                route("/docs/:page", &[Method::Get], "a1"),
                route("/hello-py/:x*", &[Method::Get], "a1"),
            ],
            conflicts: vec!["/clash".into()],
        }
    }

    fn doc(internal: bool) -> Value {
        document(&catalog(), &OpenApiOptions { server_url: "https://api.example".into(), include_internal: internal })
    }

    #[test]
    fn header_servers_and_static_paths() {
        let d = doc(false);
        assert_eq!(d["openapi"], "3.1.0");
        assert_eq!(d["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(d["servers"], json!([{"url": "https://api.example"}]));
        let get = &d["paths"]["/hello-py"]["get"];
        assert_eq!(get["summary"], "GET python/hello-py");
        assert_eq!(get["operationId"], "get_python_hello_py");
        assert_eq!(get["tags"], json!(["functions"]));
        assert!(get.get("requestBody").is_none());
        assert_eq!(d["paths"]["/hello-py"]["post"]["requestBody"]["content"]["*/*"]["schema"], json!({}));
        assert_eq!(get["responses"]["409"]["content"]["application/json"]["schema"]["$ref"], ERROR_REF);
        assert_eq!(get["responses"]["200"]["content"]["application/json"]["schema"], json!({}));
        assert_eq!(d["components"]["schemas"]["Error"]["required"], json!(["error"]));
    }

    #[test]
    fn dynamic_and_catch_all_parameters() {
        let d = doc(false);
        let users = &d["paths"]["/users/{id}"];
        assert_eq!(users["parameters"], json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]));
        assert_eq!(users["get"]["operationId"], "get_python_users_get__id__py");
        let docs = &d["paths"]["/docs/{path}"];
        assert_eq!(docs["parameters"][0]["description"], CATCH_ALL);
        assert_eq!(docs["get"]["summary"], "GET node/docs");
        assert!(d["paths"]["/docs/{page}"]["parameters"][0].get("description").is_none());
    }

    #[test]
    fn methods_merge_first_route_wins_and_ids_are_unique() {
        let d = doc(false);
        let users = &d["paths"]["/users"];
        assert_eq!(users["get"]["summary"], "GET node/get.users.js");
        assert_eq!(users["post"]["summary"], "POST node/post.users.js");
        // hello-py's handler serves /hello-py, /docs/{page} and /hello-py/{x}: the same raw id three times.
        assert_eq!(d["paths"]["/hello-py"]["get"]["operationId"], "get_python_hello_py");
        assert_eq!(d["paths"]["/docs/{page}"]["get"]["operationId"], "get_python_hello_py_2");
        assert_eq!(d["paths"]["/hello-py/{x}"]["get"]["operationId"], "get_python_hello_py_3");
        let mut seen = HashSet::new();
        for item in d["paths"].as_object().into_iter().flat_map(|p| p.values()) {
            for op in item.as_object().into_iter().flat_map(|o| o.values()).filter(|v| v.get("operationId").is_some()) {
                assert!(seen.insert(op["operationId"].to_string()), "duplicate {}", op["operationId"]);
            }
        }
        assert_eq!(seen.len(), 8);
    }

    #[test]
    fn conflicts_and_internal_paths() {
        let d = doc(false);
        assert!(d["paths"].get("/clash").is_none());
        assert!(d["paths"].as_object().is_some_and(|p| p.keys().all(|k| !k.starts_with("/_fn"))));
        assert_eq!(d["tags"].as_array().map(Vec::len), Some(1));
        assert!(d["components"].get("securitySchemes").is_none());
        let d = doc(true);
        assert_eq!(d["tags"][1]["name"], "internal");
        assert_eq!(d["components"]["securitySchemes"]["adminToken"]["name"], "x-fn-admin-token");
        let env = &d["paths"]["/_fn/function-env"];
        assert!(env["get"].is_object() && env["put"].is_object());
        assert_eq!(env["put"]["parameters"][0]["required"], true);
        assert_eq!(env["put"]["security"], json!([{"adminToken": []}]));
        assert_eq!(d["paths"]["/_fn/logs"]["get"]["parameters"][1]["schema"]["enum"], json!(["error", "access", "runtime"]));
        assert!(d["paths"]["/_fn/metrics"]["get"]["responses"]["200"]["content"]["text/plain"].is_object());
        assert_eq!(d["paths"]["/_fn/reload"]["post"]["tags"], json!(["internal"]));
        for p in ["/_fn/health", "/_fn/catalog", "/_fn/openapi.json"] {
            assert!(d["paths"][p]["get"].is_object(), "{p}");
        }
    }
}
