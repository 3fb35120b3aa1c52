//! The supervisor's control socket (docs/wire.md): the gateway asks it to start cold workers and to kill workers
//! that timed out. Only the gateway's user and our own may connect (`SO_PEERCRED`), since the socket's file mode is
//! the only other barrier.

use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::net::{UnixListener, UnixStream};

use crate::frame::{self, FrameError};
use crate::supervise::instance::Instance;

pub struct ControlServer {
    listener: UnixListener,
    allowed_uids: Vec<u32>,
}

impl ControlServer {
    pub fn bind(path: &Path, owner: Option<u32>) -> std::io::Result<ControlServer> {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let me = nix::unistd::Uid::effective().as_raw();
        let mut allowed_uids = vec![me];
        if let Some(uid) = owner {
            crate::rundir::chown(path, Some(uid), None)?;
            allowed_uids.push(uid);
        }
        Ok(ControlServer { listener, allowed_uids })
    }

    /// Accepts connections until the task is dropped.
    pub async fn serve(self, instance: Arc<Instance>) {
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            match stream.peer_cred() {
                Ok(cred) if self.allowed_uids.contains(&cred.uid()) => {}
                Ok(cred) => {
                    tracing::warn!(uid = cred.uid(), "control socket: refused a peer that is neither the gateway nor fastfn");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket: cannot read peer credentials");
                    continue;
                }
            }
            tokio::spawn(handle_connection(stream, Arc::clone(&instance)));
        }
    }
}

async fn handle_connection(mut stream: UnixStream, instance: Arc<Instance>) {
    loop {
        let request = match frame::read(&mut stream, frame::MAX_CONTROL_FRAME).await {
            Ok(request) => request,
            Err(FrameError::Closed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "control socket: bad frame; closing the connection");
                return;
            }
        };
        let reply = handle(&request, &instance).await;
        if frame::write(&mut stream, &reply).await.is_err() {
            return;
        }
    }
}

/// A successful reply whose `body` is the answer's JSON text: the gateway sends it as it is. (Decoding and
/// re-encoding it in Lua would turn every empty array into `{}`: cjson cannot tell them apart.)
fn answer(value: Value) -> Value {
    json!({"ok": true, "body": value.to_string()})
}

async fn handle(request: &Map<String, Value>, instance: &Arc<Instance>) -> Map<String, Value> {
    let op = request.get("op").and_then(Value::as_str).unwrap_or("");
    let function = request.get("function").and_then(Value::as_str);
    let workers = &instance.workers;
    // Which worker of the function's pool (0 when absent).
    let index = request.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
    let reply = match (op, function) {
        ("status", _) => {
            let status = instance.status();
            json!({"ok": true, "body": status.to_string(), "status": status})
        }
        ("catalog", _) => answer(json!(*workers.catalog())),
        ("logs", _) => {
            let file = request.get("file").and_then(Value::as_str).unwrap_or("all");
            let lines = request.get("lines").and_then(Value::as_u64).unwrap_or(100).clamp(1, 5000) as usize;
            match instance.logs(file, lines, request.get("fn").and_then(Value::as_str)) {
                Ok(view) => answer(view),
                Err(refusal) => json!({"ok": false, "status": refusal.status, "error": refusal.error}),
            }
        }
        ("openapi", _) => {
            let host = request.get("host").and_then(Value::as_str).filter(|h| !h.is_empty() && !h.contains(['/', ' ', '"']));
            let server_url = instance.settings.public_base_url.clone().unwrap_or_else(|| format!("http://{}", host.unwrap_or("localhost")));
            let opts = crate::openapi::OpenApiOptions { server_url, include_internal: instance.settings.openapi_include_internal };
            answer(crate::openapi::document(&workers.catalog(), &opts))
        }
        ("function-env" | "function-env-put" | "function-config" | "function-config-put", _) => {
            let name = request.get("name").and_then(Value::as_str);
            let runtime = request.get("runtime").and_then(Value::as_str);
            let body = request.get("body").unwrap_or(&Value::Null);
            let result = match op {
                "function-env" => instance.function_env(name, runtime),
                "function-env-put" => instance.put_function_env(name, runtime, body).await,
                "function-config" => instance.function_config(name, runtime),
                _ => instance.put_function_config(name, runtime, body).await,
            };
            match result {
                Ok(view) => answer(view),
                Err(refusal) => json!({"ok": false, "status": refusal.status, "error": refusal.error}),
            }
        }
        ("reload", _) => match instance.reload().await {
            Ok(summary) => answer(summary),
            Err(error) => json!({"ok": false, "error": error}),
        },
        ("ensure", Some(id)) => match workers.ensure(id, index).await {
            Ok(()) => json!({"ok": true}),
            Err(error) => json!({"ok": false, "error": error}),
        },
        ("timed_out", Some(id)) => {
            tracing::warn!(function = id, "a request timed out: stopping the worker; it restarts on the next request");
            workers.kill(id, index);
            json!({"ok": true})
        }
        ("ensure" | "timed_out", None) => json!({"ok": false, "error": "`function` is required"}),
        _ => json!({"ok": false, "error": format!("unknown op `{op}`")}),
    };
    frame::object(reply)
}
