//! Issue 5, the function contract through the real stack: explicit function folders, versions, manifests, and
//! precedence between them.

use serde_json::json;

use crate::harness::Stack;

const ECHO_PY: &str = "def handler(event):\n    return {'fn': event['context']['function_name'], 'version': event['context']['version'], 'params': event['params']}\n";
const ECHO_JS: &str = "exports.handler = (event) => ({ fn: event.context.function_name, version: event.context.version, params: event.params });\n";

#[test]
fn explicit_folders_versions_and_manifests_serve() {
    let stack = Stack::new()
        .file("explicit/fn.config.json", r#"{"entrypoint": "src/api.py", "invoke": {"methods": ["PUT"]}}"#)
        .file("explicit/src/api.py", ECHO_PY)
        .file("node/hello/handler.js", ECHO_JS)
        .file("node/hello/v2/handler.js", ECHO_JS)
        .file("shop/fn.routes.json", r#"{"routes": {"GET,POST /catalog/:sku": "_item.py"}}"#)
        .file("shop/_item.py", ECHO_PY)
        .start();
    let explicit = stack.request("PUT", "/explicit/deep/path", &[], Some(b"{}"));
    assert_eq!(explicit.status, 200, "{}", explicit.text());
    assert_eq!(explicit.json(), json!({"fn": "explicit", "version": "default", "params": {"wildcard": "deep/path"}}));
    assert_eq!(stack.get("/explicit").status, 405);

    assert_eq!(stack.get("/hello").json()["version"], "default");
    let v2 = stack.get("/hello@v2");
    assert_eq!(v2.status, 200, "{}", v2.text());
    assert_eq!(v2.json(), json!({"fn": "hello", "version": "v2", "params": {}}));

    let item = stack.request("POST", "/catalog/A-1", &[], Some(b"x"));
    assert_eq!(item.status, 200, "{}", item.text());
    assert_eq!(item.json(), json!({"fn": "shop/_item.py", "version": "default", "params": {"sku": "A-1"}}));
}

#[test]
fn a_path_shared_by_rank_follows_upstream_precedence() {
    let stack = Stack::new()
        .file("fn.routes.json", r#"{"routes": {"DELETE /items": "_items_delete.js"}}"#)
        .file("_items_delete.js", "exports.handler = () => ({ from: 'manifest' });\n")
        .file("get.items.js", "exports.handler = () => ({ from: 'file' });\n")
        .file("python/items/handler.py", "def handler(event):\n    return {'from': 'function'}\n")
        .file("python/items/fn.config.json", r#"{"invoke": {"methods": ["GET", "POST", "DELETE"]}}"#)
        .start();
    assert_eq!(stack.get("/items").json(), json!({"from": "file"}));
    assert_eq!(stack.request("POST", "/items", &[], Some(b"x")).json(), json!({"from": "function"}));
    assert_eq!(stack.request("DELETE", "/items", &[], None).json(), json!({"from": "manifest"}));
    let put = stack.request("PUT", "/items", &[], Some(b"x"));
    assert_eq!(put.status, 405);
    assert_eq!(put.header("allow"), Some("GET, HEAD, POST, DELETE, OPTIONS"));
}
