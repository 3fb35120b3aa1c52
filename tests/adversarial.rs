//! Issue 12: whatever arrives over HTTP and whatever a handler does, the stack answers (JSON 4xx/5xx, never a crash
//! or a hang), keeps serving everyone else, and loses nothing. Each case asserts the outcome docs/reliability.md
//! lists for it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::{http, wait_until, Stack};

/// Reports what it was given, so a test can see what reached the handler.
const ECHO: &str = "def handler(event):\n    body = event.get('body') or ''\n    return {'method': event['method'], 'body_len': len(body), 'query_keys': len(event['query']), 'header_keys': len(event['headers'])}\n";

fn echo_stack() -> Stack {
    Stack::new().file("echo/handler.py", ECHO).file("echo/fn.config.json", r#"{"invoke": {"methods": ["GET", "POST"]}}"#).start()
}

/// Sends raw bytes and reads the whole answer (the request asks the server to close).
fn raw(port: u16, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    stream.write_all(bytes).expect("send");
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

#[test]
fn head_and_options_answer_as_http_requires() {
    let stack = echo_stack();
    let get = stack.get("/echo");
    assert_eq!(get.status, 200);

    // HEAD: the GET answer's status and headers, no body; the handler sees HEAD.
    let head = raw(stack.port, b"HEAD /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&head), 200, "{head}");
    let (headers, body) = head.split_once("\r\n\r\n").expect("header end");
    assert!(body.is_empty(), "HEAD has no body: {body:?}");
    assert!(headers.to_ascii_lowercase().contains("content-type: application/json"), "{headers}");
    let head_len = headers.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_string)).expect("content-length");
    let as_get = http::request(stack.port, "GET", "/echo", &[], None).expect("get");
    assert_eq!(head_len.parse::<usize>().ok(), Some(as_get.body.len() + 1), "HEAD says the length of its own (HEAD) answer: {headers}");

    // OPTIONS on a path that exists: 204 with what it answers; on one that does not: 404.
    let options = http::request(stack.port, "OPTIONS", "/echo", &[], None).expect("options");
    assert_eq!((options.status, options.header("allow")), (204, Some("GET, HEAD, POST, OPTIONS")));
    assert_eq!(http::request(stack.port, "OPTIONS", "/nope", &[], None).expect("options").status, 404);

    // Methods nobody answers: 405 JSON (nginx refuses TRACE itself), never the handler.
    for method in ["TRACE", "PUT", "DELETE", "FOO"] {
        let answer = http::request(stack.port, method, "/echo", &[], None).expect("answer");
        assert_eq!(answer.status, 405, "{method}: {}", answer.text());
        assert_eq!(answer.json()["error"], "method not allowed", "{method}");
    }
}

#[test]
fn malformed_request_lines_get_json_4xx_and_the_stack_keeps_serving() {
    let stack = echo_stack();
    let cases: Vec<Vec<u8>> = vec![
        b"GET /echo/%zz HTTP/1.1".to_vec(),
        b"GET /echo% HTTP/1.1".to_vec(),
        b"GET /ec%00ho HTTP/1.1".to_vec(),
        b"GET /%C0%AF%C0%AF HTTP/1.1".to_vec(),
        b"GET /echo/\x01\x02 HTTP/1.1".to_vec(),
        b"GET /echo\xff\xfe HTTP/1.1".to_vec(),
        b"GET /../../etc/passwd HTTP/1.1".to_vec(),
        b"GET echo HTTP/1.1".to_vec(),
        b"GET /echo HTTP/9.9".to_vec(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(), // a TLS ClientHello on the plain port
        b"GET /echo?%ff%fe=%&&&=%G0 HTTP/1.1".to_vec(),
    ];
    for line in cases {
        let mut request = line.clone();
        request.extend_from_slice(b"\r\nHost: x\r\nConnection: close\r\n\r\n");
        let answer = raw(stack.port, &request);
        let shown = String::from_utf8_lossy(&line);
        let status = status_of(&answer);
        // 505 is the right answer to an HTTP version nginx does not speak; anything else is the client's fault.
        assert!(status < 500 || (status == 505 && shown.contains("HTTP/9.9")), "{shown:?} got {status}: {answer}");
        if status >= 400 {
            assert!(answer.contains("Content-Type: application/json") && answer.contains("{\"error\":"), "{shown:?}: not JSON: {answer}");
        }
    }
    assert_eq!(stack.get("/echo").status, 200, "still serving");
}

#[test]
fn invalid_utf8_in_bodies_and_queries_reaches_the_handler_without_breaking_the_frame() {
    let stack = echo_stack();
    let body: &[u8] = b"\xff\xfe\x00abc\xc3";
    let answer = stack.request("POST", "/echo?q=%ff%fe%00", &[("Content-Type", "application/json")], Some(body));
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["method"], "POST");
    assert!(answer.json()["body_len"].as_u64().is_some_and(|n| n >= 4), "{}", answer.text());
    assert_eq!(answer.json()["query_keys"], 1);
}

#[test]
fn repeated_headers_and_query_keys_are_capped_at_a_hundred() {
    let stack = echo_stack();
    let query: Vec<String> = (0..150).map(|i| format!("k{i}=v")).collect();
    let names: Vec<(String, String)> = (0..150).map(|i| (format!("X-Rep-{i}"), "v".to_string())).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let answer = stack.request("GET", &format!("/echo?{}", query.join("&")), &headers, None);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(answer.json()["query_keys"].as_u64().is_some_and(|n| n <= 100), "{}", answer.text());
    assert!(answer.json()["header_keys"].as_u64().is_some_and(|n| n <= 100), "{}", answer.text());

    // The same header 150 times and the same key 150 times: one entry each, the values capped likewise.
    let same: Vec<(&str, &str)> = (0..150).map(|_| ("X-Same", "v")).collect();
    let answer = stack.request("GET", &format!("/echo?{}", vec!["k=v"; 150].join("&")), &same, None);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["query_keys"], 1);
}

#[test]
fn slow_and_endless_clients_do_not_starve_the_others() {
    let stack = echo_stack();
    // Slowloris: 100 connections that send part of their headers and then nothing.
    let mut slow = Vec::new();
    for i in 0..100 {
        let mut s = TcpStream::connect(("127.0.0.1", stack.port)).expect("connect");
        s.write_all(format!("GET /echo?slow={i} HTTP/1.1\r\nHost: x\r\nX-Part: ").as_bytes()).expect("partial header");
        slow.push(s);
    }
    // A chunked upload whose body never ends.
    let mut endless = TcpStream::connect(("127.0.0.1", stack.port)).expect("connect");
    endless.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n").expect("first chunk");
    // Everybody else is served at once.
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(stack.get("/echo").status, 200);
        assert!(started.elapsed() < Duration::from_secs(2), "a normal request took {:?}", started.elapsed());
    }
    // The endless upload never reached the handler: nothing was logged for it, and its connection is still open
    // (nginx's body timeout, 10 s, ends it with a 408).
    endless.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
    let mut buf = [0u8; 64];
    assert!(endless.read(&mut buf).is_err(), "no answer before the body is complete");
    drop(slow);
}

#[test]
fn handler_garbage_on_stdout_and_an_oversized_reply_leave_the_pool_healthy() {
    let garbage = "import sys\n\ndef handler(event):\n    sys.stdout.buffer.write(b'\\xff\\x00\\x1b[31m' * 1000 + b'\\n' + b'z' * 100000 + b'\\n')\n    sys.stdout.flush()\n    return {'ok': True}\n";
    // 11 MiB: over the 10 MiB a worker's reply frame may have.
    let huge = "def handler(event):\n    if event['query'].get('big'):\n        return {'status': 200, 'body': 'x' * (11 * 1024 * 1024)}\n    return {'small': True}\n";
    let mut stack = Stack::new()
        .file("garbage/handler.py", garbage)
        .file("huge/handler.py", huge)
        .file("huge/fn.config.json", r#"{"worker_pool": {"max_workers": 1}}"#)
        .start();
    for _ in 0..3 {
        let answer = stack.get("/garbage");
        assert_eq!((answer.status, answer.json()["ok"].clone()), (200, serde_json::json!(true)), "{}", answer.text());
    }
    let over = stack.get("/huge?big=1");
    assert_eq!(over.status, 502, "{}", over.text());
    assert_eq!(over.json()["error"], "invalid runtime response");
    stack.allow_log("frame length");
    // The pool is not poisoned: the same (only) worker answers the next request.
    let next = stack.get("/huge");
    assert_eq!((next.status, next.json()), (200, serde_json::json!({"small": true})));
    assert!(wait_until(Duration::from_secs(5), || stack.log("runtime.log").contains("zzzzzzzzzz")), "the long line reached the log");
}

#[test]
fn a_socket_replaced_by_a_regular_file_is_repaired_on_the_next_request() {
    let mut stack = echo_stack();
    // Not as root, the planted file is the gateway's own and connecting to it is refused: nginx logs that.
    stack.allow_log("(111: Connection refused)");
    assert_eq!(stack.get("/echo").status, 200);
    let sockets: Vec<std::path::PathBuf> = std::fs::read_dir(stack.run_dir().join("sock"))
        .expect("sock dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sock"))
        .collect();
    assert!(!sockets.is_empty());
    for socket in &sockets {
        std::fs::remove_file(socket).expect("remove socket");
        std::fs::write(socket, "not a socket").expect("plant a file");
    }
    // The first request may find the file; it still gets an answer, and the function works again right after.
    let first = stack.get("/echo");
    assert!(first.status == 200 || first.status == 503, "{} {}", first.status, first.text());
    assert!(wait_until(Duration::from_secs(10), || stack.get("/echo").status == 200), "the function was not repaired");
}

#[test]
fn the_functions_folder_deleted_and_recreated_while_serving() {
    let stack = Stack::new().file("echo/handler.py", ECHO).start();
    assert_eq!(stack.get("/echo").status, 200);
    let root = stack.functions.path().to_path_buf();
    std::fs::remove_dir_all(&root).expect("delete the folder");
    // The last good catalog keeps serving; the running worker even answers from memory.
    std::thread::sleep(Duration::from_millis(800));
    let during = stack.get("/echo");
    assert!(during.status < 500 || during.status == 503, "{} {}", during.status, during.text());
    // Recreated with a new function: hot reload picks it up (the watcher follows the folder back).
    std::fs::create_dir_all(root.join("echo")).expect("recreate");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::write(root.join("echo/handler.py"), ECHO).expect("write");
    std::fs::create_dir_all(root.join("fresh")).expect("mkdir");
    std::fs::write(root.join("fresh/handler.py"), "def handler(event):\n    return {'fresh': True}\n").expect("write");
    assert!(wait_until(Duration::from_secs(15), || stack.get("/fresh").status == 200), "the recreated folder is served: {}", stack.stderr());
    assert_eq!(stack.get("/echo").status, 200);
}

#[test]
fn handlers_that_leak_descriptors_or_memory_get_a_fresh_worker_at_their_limit() {
    let fds = "LEAKED = []\n\ndef handler(event):\n    for _ in range(30):\n        LEAKED.append(open('/dev/null'))\n    return {'open': len(LEAKED)}\n";
    let memory = "HOARD = []\n\ndef handler(event):\n    HOARD.append(bytearray(48 * 1024 * 1024))\n    return {'mib': 48 * len(HOARD)}\n";
    let one = r#"{"worker_pool": {"max_workers": 1}}"#;
    let stack = Stack::new()
        .env("FN_WORKER_MAX_OPEN_FILES", "64")
        .env("FN_WORKER_MAX_DATA_MB", "256")
        .file("fds/handler.py", fds)
        .file("fds/fn.config.json", one)
        .file("memory/handler.py", memory)
        .file("memory/fn.config.json", one)
        .file("fds-node/index.js", "const fs = require('fs');\nconst leaked = [];\nexports.handler = () => {\n  for (let i = 0; i < 30; i++) leaked.push(fs.openSync('/dev/null', 'r'));\n  return { open: leaked.length };\n};\n")
        .file("fds-node/fn.config.json", one)
        .start();
    // Between the answer that hit the limit and the fresh worker, a request may meet the exiting one (502) or a
    // start held back because the worker had lived less than a second (503).
    for path in ["/fds", "/memory", "/fds-node"] {
        let mut statuses = Vec::new();
        let mut recovered = false;
        for _ in 0..40 {
            let answer = stack.get(path);
            statuses.push(answer.status);
            if answer.status == 500 {
                assert_eq!(answer.json()["error"], "internal error", "{}", answer.text());
            }
            if statuses.contains(&500) && answer.status == 200 {
                recovered = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(statuses.contains(&500), "{path}: the limit was never hit: {statuses:?}");
        assert!(recovered, "{path}: no fresh worker after the limit: {statuses:?}");
        assert!(statuses.iter().all(|s| [200, 500, 502, 503].contains(s)), "{path}: {statuses:?}");
    }
    assert!(stack.log("runtime.log").contains("worker out of file descriptors; it exits after answering"));
    assert!(stack.log("runtime.log").contains("worker out of memory; it exits after answering"));
    assert!(stack.log("runtime.log").matches("worker out of file descriptors").count() >= 2, "Python and Node");
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::Builder::new().prefix("ffn-disk-").tempdir_in("/tmp").expect("temp dir");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_run_dir_disk_keeps_serving_and_a_reload_says_why_it_failed() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: mounting a small tmpfs for the run dir needs root");
        return;
    }
    let Some(disk) = SmallDisk::mount("8m") else {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    };
    {
        let stack = Stack::new()
            .mode("run")
            .run_base(disk.dir.path())
            .file("a/handler.py", "def handler(event):\n    return {'a': True}\n")
            .file("b/handler.py", "def handler(event):\n    print('b was called', flush=True)\n    return {'b': True}\n")
            .start();
        assert_eq!(stack.get("/a").status, 200);
        // Fill the disk to the last byte.
        let filler = disk.dir.path().join("filler");
        let mut file = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 1 << 20];
        while file.write_all(&chunk).is_ok() {}
        drop(file);
        // Warm and cold functions keep answering (the cold one starts: a socket needs no data blocks).
        for _ in 0..5 {
            assert_eq!(stack.get("/a").status, 200);
        }
        assert_eq!(stack.get("/b").status, 200);
        // A reload cannot write its new state: it says so, and the last good state keeps serving.
        let base = stack.run_dir().parent().expect("run base").to_path_buf();
        let reload = std::process::Command::new(crate::harness::FASTFN).arg("reload").arg("--run-dir").arg(&base).output().expect("reload");
        assert_eq!(reload.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&reload.stderr).contains("No space left on device"), "{}", String::from_utf8_lossy(&reload.stderr));
        assert_eq!(stack.get("/a").status, 200);
        // Space again: the next reload works and logging resumes.
        std::fs::remove_file(&filler).expect("free the disk");
        let reload = std::process::Command::new(crate::harness::FASTFN).arg("reload").arg("--run-dir").arg(&base).output().expect("reload");
        assert_eq!(reload.status.code(), Some(0), "{}", String::from_utf8_lossy(&reload.stderr));
        assert_eq!(stack.get("/b").status, 200);
        assert!(wait_until(Duration::from_secs(5), || stack.log("runtime.log").contains("b was called")));
    }
    drop(disk);
}
