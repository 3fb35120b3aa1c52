//! Fuzz targets (issue 12), as tests of the binary crate so they reach its private modules on the stable toolchain.
//! See fuzz/README.md. Each target replays its corpus (`fuzz/corpus/<target>/`: seeds and earlier crashes), then
//! runs a mutation fuzzer for `FN_FUZZ_SECONDS` seconds (default 2): inputs are generated with the real field names
//! and shapes, then mutated byte by byte (flips, insertions, deletions, truncations, splices, interesting values).
//! An input that panics, breaks a property or hangs is written to `fuzz/corpus/<target>/crash-<hash>` and fails the
//! test; it is replayed first on every later run. `FN_FUZZ_SEED` repeats a run.
//!
//! Targets: `fuzz_frame_codec` (frame::decode_body / read / encode), `fuzz_fn_config` (fnconfig::parse),
//! `fuzz_fn_env` (secrets::parse), `fuzz_fastfn_toml` (config_file::parse), `fuzz_discovery` (discover over
//! generated trees, with symlinks and random or truncated fn.config.json / fn.routes.json / fn.env.json).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

// ---------------------------------------------------------------------------------------------------------------
// The fuzzer.

/// splitmix64: small, fast, and repeatable from a printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn fuzz_seconds() -> f64 {
    std::env::var("FN_FUZZ_SECONDS").ok().and_then(|s| s.trim().parse::<f64>().ok()).filter(|s| *s >= 0.0).unwrap_or(2.0)
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("corpus").join(target)
}

/// FNV-1a, for crash file names.
fn hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| payload.downcast_ref::<String>().cloned()).unwrap_or_else(|| "panic".into())
}

/// Tokens worth inserting into any input.
const INTERESTING: &[&[u8]] = &[
    b"\0", b"\xff", b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", "é".as_bytes(), "💥".as_bytes(), "\u{202e}".as_bytes(), b"\\u0000",
    b"\\ud800", b"\"", b"\\", b"{", b"}", b"[", b"]", b"[[[[[[[[[[[[[[[[", b"{\"a\":{\"a\":{\"a\":", b",", b":", b"=", b".",
    b"\n", b"\r\n", b"\t", b" ", b"null", b"true", b"false", b"0", b"-0", b"-1", b"1e999", b"-1e999", b"1.5",
    b"18446744073709551615", b"18446744073709551616", b"9223372036854775807", b"9223372036854775808",
    b"-9223372036854775809", b"4294967295", b"900000", b"900001", b"67108864", b"67108865", b"0.0000001", b"NaN", b"inf",
    b"/", b"//", b"..", b"../", b"*", b":", b"[id]", b"[...slug]", b"[[...opt]]", b"_fn", b"console", b"<hidden>",
];

/// Lengths worth putting in a 4-byte big-endian header.
const INTERESTING_U32: &[u32] = &[0, 1, 2, 3, 6, 7, 64, 65, 1023, 1024, 1025, 1 << 20, (1 << 20) + 1, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFE, u32::MAX];

fn mutate(rng: &mut Rng, data: &mut Vec<u8>, dict: &[&[u8]], other: &[u8]) {
    match rng.below(11) {
        0 if !data.is_empty() => {
            let i = rng.below(data.len());
            data[i] ^= 1 << rng.below(8);
        }
        1 if !data.is_empty() => {
            let i = rng.below(data.len());
            data[i] = *rng.pick(&[0u8, 0xFF, 0x7F, 0x80, b'"', b'{', b'}', b'[', b']', b',', b':', b'\\', b'\n', b'=', b'.', b'/', b' ']);
        }
        2 => {
            let at = rng.below(data.len() + 1);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            data.splice(at..at, bytes);
        }
        3 | 4 => {
            let at = rng.below(data.len() + 1);
            let token = if !dict.is_empty() && rng.one_in(2) { *rng.pick(dict) } else { *rng.pick(INTERESTING) };
            data.splice(at..at, token.iter().copied());
        }
        5 if !data.is_empty() => {
            let from = rng.below(data.len());
            let to = (from + 1 + rng.below(16)).min(data.len());
            data.drain(from..to);
        }
        6 => {
            // Truncation: what a half-written file or a closed connection leaves.
            let keep = rng.below(data.len() + 1);
            data.truncate(keep);
        }
        7 if !data.is_empty() => {
            // Repeat a chunk: deep nesting, long names.
            let from = rng.below(data.len());
            let to = (from + 1 + rng.below(8)).min(data.len());
            let chunk = data[from..to].to_vec();
            let most = if rng.one_in(8) { 2000 } else { 16 };
            let times = 1 + rng.below(most);
            let at = rng.below(data.len() + 1);
            data.splice(at..at, chunk.iter().copied().cycle().take(chunk.len() * times));
        }
        8 if !other.is_empty() => {
            // Splice: a prefix of this input and a suffix of another.
            let keep = rng.below(data.len() + 1);
            let from = rng.below(other.len());
            data.truncate(keep);
            data.extend_from_slice(&other[from..]);
        }
        9 if data.len() >= 4 => {
            let at = rng.below(data.len() - 3);
            data[at..at + 4].copy_from_slice(&rng.pick(INTERESTING_U32).to_be_bytes());
        }
        _ => {
            let at = rng.below(data.len() + 1);
            let token = *rng.pick(INTERESTING);
            data.splice(at..at, token.iter().copied());
        }
    }
    data.truncate(1 << 20);
}

struct Target<'a> {
    name: &'a str,
    /// A fresh structured input.
    generate: &'a dyn Fn(&mut Rng) -> Vec<u8>,
    /// Target-specific tokens for insertions.
    dict: &'a [&'a [u8]],
    /// Runs one input; panics when a property fails.
    exec: &'a dyn Fn(&[u8]),
    /// An input running longer than this is a hang: it is saved and the process exits.
    hang_after: Duration,
}

/// What the watchdog sees: when the current input started, and the input.
type Current = Arc<Mutex<Option<(Instant, Vec<u8>)>>>;

fn save_crash(target: &str, kind: &str, input: &[u8]) -> PathBuf {
    let dir = corpus_dir(target);
    let path = dir.join(format!("{kind}-{}", hash(input)));
    let written = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, input));
    if let Err(e) = written {
        eprintln!("fuzz {target}: cannot save {}: {e}", path.display());
    }
    path
}

fn run(target: Target<'_>) {
    let seconds = fuzz_seconds();
    let seed = std::env::var("FN_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    eprintln!("fuzz {}: seed {seed} (FN_FUZZ_SEED), {seconds} s", target.name);
    let mut rng = Rng(seed);
    let mut corpus: Vec<(String, Vec<u8>)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(corpus_dir(target.name)) {
        for entry in entries.flatten() {
            if let (Ok(bytes), Some(name)) = (std::fs::read(entry.path()), entry.file_name().to_str()) {
                corpus.push((name.to_string(), bytes));
            }
        }
    }
    corpus.sort();

    let current: Current = Arc::new(Mutex::new(None));
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (current, done, name, limit) = (current.clone(), done.clone(), target.name.to_string(), target.hang_after);
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let hung = current.lock().ok().and_then(|c| c.as_ref().filter(|(t, _)| t.elapsed() > limit).map(|(_, input)| input.clone()));
                if let Some(input) = hung {
                    let path = save_crash(&name, "crash", &input);
                    eprintln!("fuzz {name}: an input ran for over {limit:?} (a hang), saved as {}", path.display());
                    std::process::exit(101);
                }
            }
        })
    };

    let mut executions: u64 = 0;
    let mut crashes: Vec<String> = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut exec_one = |input: &[u8], crashes: &mut Vec<String>| {
        if let Ok(mut c) = current.lock() {
            *c = Some((Instant::now(), input.to_vec()));
        }
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (target.exec)(input)));
        slowest = slowest.max(started.elapsed());
        if let Ok(mut c) = current.lock() {
            *c = None;
        }
        executions += 1;
        if let Err(payload) = outcome {
            let path = save_crash(target.name, "crash", input);
            let line = format!("{}: {}", path.display(), panic_message(payload.as_ref()));
            eprintln!("fuzz {}: CRASH {line}", target.name);
            if !crashes.contains(&line) {
                crashes.push(line);
            }
        }
    };

    let started = Instant::now();
    for (_, input) in &corpus {
        exec_one(input, &mut crashes);
    }
    let deadline = Duration::from_secs_f64(seconds);
    while started.elapsed() < deadline && crashes.len() < 20 {
        // A small batch between clock reads.
        for _ in 0..16 {
            let mut input = if !corpus.is_empty() && rng.one_in(3) { rng.pick(&corpus).1.clone() } else { (target.generate)(&mut rng) };
            let other = if !corpus.is_empty() && rng.one_in(2) { rng.pick(&corpus).1.clone() } else { (target.generate)(&mut rng) };
            // Some inputs stay as generated (valid ones must be accepted or properly refused too).
            let rounds = if rng.one_in(4) { 0 } else { 1 + rng.below(6) };
            for _ in 0..rounds {
                mutate(&mut rng, &mut input, target.dict, &other);
            }
            exec_one(&input, &mut crashes);
        }
    }
    done.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "fuzz {}: {executions} executions in {elapsed:.1} s, {} crashes (corpus {} inputs, slowest input {} ms)",
        target.name,
        crashes.len(),
        corpus.len(),
        slowest.as_millis()
    );
    if let Ok(path) = std::env::var("FN_FUZZ_REPORT") {
        if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(file, "{}\t{executions}\t{elapsed:.1}\t{}", target.name, crashes.len());
        }
    }
    assert!(crashes.is_empty(), "fuzz {}: {} crashing input(s):\n{}", target.name, crashes.len(), crashes.join("\n"));
}

// ---------------------------------------------------------------------------------------------------------------
// Generic structured JSON.

fn gen_number(rng: &mut Rng) -> Value {
    match rng.below(8) {
        0 => json!(0),
        1 => json!(rng.below(2000)),
        2 => json!(-(rng.below(100) as i64) - 1),
        3 => json!(u64::MAX),
        4 => json!(i64::MIN),
        5 => json!(rng.below(64) as f64 / 8.0),
        6 => json!(*rng.pick(&[900_000u64, 900_001, 67_108_864, 67_108_865, 429, 503, 1 << 20])),
        _ => json!(rng.next() >> rng.below(64)),
    }
}

fn gen_string(rng: &mut Rng) -> String {
    let pool = [
        "", "x", "GET", "get,post", "FETCH", "/", "/users", "/users/:id", "/v1/*", "/a/*/b", "/_fn/x", "/console", "nope",
        "api/users", "../x", "/abs", "handler.py", "src/api.py", "main", "1x", "$h", "python", "node", "cobol", "<hidden>",
        "*.example.org", "API.example.com", "a,b", "é💥", "\u{0}", "a b", "x]", "[id]", "s3cret-value",
    ];
    match rng.below(4) {
        0 => (0..rng.below(12)).map(|_| char::from(b' ' + rng.below(95) as u8)).collect(),
        1 => "a".repeat(rng.below(300)),
        _ => rng.pick(&pool).to_string(),
    }
}

fn gen_json(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 4 { 4 } else { 6 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => gen_number(rng),
        3 => Value::String(gen_string(rng)),
        4 => Value::Array((0..rng.below(4)).map(|_| gen_json(rng, depth + 1)).collect()),
        _ => Value::Object((0..rng.below(4)).map(|_| (gen_string(rng), gen_json(rng, depth + 1))).collect()),
    }
}

fn to_text(rng: &mut Rng, value: &Value) -> Vec<u8> {
    let text = if rng.one_in(2) { serde_json::to_string_pretty(value) } else { serde_json::to_string(value) };
    text.unwrap_or_default().into_bytes()
}

// ---------------------------------------------------------------------------------------------------------------
// fn.config.json

const FN_CONFIG_DICT: &[&[u8]] = &[
    b"\"timeout_ms\":", b"\"max_body_bytes\":", b"\"invoke\":{\"routes\":[", b"\"methods\":", b"\"worker_pool\":{",
    b"\"keep_warm\":", b"\"entrypoint\":", b"\"name\":", b"\"runtime\":", b"\"force-url\":true", b"\"sandbox\":{\"exec\":",
];

fn gen_fn_config_value(rng: &mut Rng) -> Value {
    let mut map = Map::new();
    let any = |rng: &mut Rng| if rng.one_in(3) { gen_json(rng, 2) } else { Value::Null };
    for _ in 0..rng.below(7) {
        let (key, value): (&str, Value) = match rng.below(20) {
            0 => ("timeout_ms", gen_number(rng)),
            1 => ("max_body_bytes", gen_number(rng)),
            2 => ("max_concurrency", gen_number(rng)),
            3 => ("zero_config", json!({"ignore_dirs": [gen_string(rng)]})),
            4 => ("zero_config_ignore_dirs", if rng.one_in(2) { json!(gen_string(rng)) } else { json!([gen_string(rng), gen_string(rng)]) }),
            5 => ("strict_fs", json!(rng.one_in(2))),
            6 => ("sandbox", json!({"exec": rng.one_in(2)})),
            7 => ("include_debug_headers", json!(rng.one_in(2))),
            8 => ("keep_warm", json!({"enabled": rng.one_in(2), "min_warm": gen_number(rng), "idle_ttl_seconds": gen_number(rng), "ping_every_seconds": 45})),
            9 => ("worker_pool", {
                let mut pool = Map::new();
                for field in ["max_workers", "max_queue", "queue_timeout_ms", "overflow_status", "min_warm", "idle_ttl_seconds", "enabled", "queue_poll_ms", "bogus"] {
                    if rng.one_in(3) {
                        pool.insert(field.into(), gen_number(rng));
                    }
                }
                Value::Object(pool)
            }),
            10..=13 => ("invoke", {
                let mut invoke = Map::new();
                let routes: Vec<Value> = (0..rng.below(4)).map(|_| Value::String(gen_string(rng))).collect();
                let candidates: [(&str, Value); 9] = [
                    ("methods", json!([gen_string(rng), "GET", "post"])),
                    ("allow_hosts", json!(gen_string(rng))),
                    ("handler", json!(gen_string(rng))),
                    ("routes", Value::Array(routes)),
                    ("route", json!(gen_string(rng))),
                    ("force-url", json!(rng.one_in(2))),
                    ("adapter", json!("native")),
                    ("default_method", json!("GET")),
                    ("unknown", any(rng)),
                ];
                for (k, v) in candidates {
                    if rng.one_in(3) {
                        invoke.insert(k.into(), v);
                    }
                }
                Value::Object(invoke)
            }),
            14 => ("name", json!(gen_string(rng))),
            15 => ("runtime", json!(*rng.pick(&["python", "node", "php", "lua", "go", "rust", "cobol"]))),
            16 => ("entrypoint", json!(*rng.pick(&["handler.py", "index.js", "src/api.py", "../x.py", "/etc/passwd", "a//b", "loop/handler.py", ""]))),
            17 => (*rng.pick(&["force-url", "force_url", "forceUrl"]), json!(rng.one_in(2))),
            18 => (*rng.pick(&["group", "version", "schedule", "description", "routing"]), gen_json(rng, 3)),
            _ => ("colour", gen_json(rng, 3)),
        };
        // Sometimes a field of the wrong type.
        let value = if rng.one_in(6) { gen_json(rng, 3) } else { value };
        map.insert(key.to_string(), value);
    }
    Value::Object(map)
}

fn gen_fn_config(rng: &mut Rng) -> Vec<u8> {
    let value = if rng.one_in(10) { gen_json(rng, 0) } else { gen_fn_config_value(rng) };
    to_text(rng, &value)
}

/// Folders with awkward names, to check errors name exactly the folder they were given.
const DIRS: &[&str] = &["/f/users", "/srv/fns/we ird/[id]", "/tmp/ünï/💥", "/x/fn.config.json"];

fn check_fn_config(input: &[u8]) {
    let dir = Path::new(DIRS[input.len() % DIRS.len()]);
    let text = String::from_utf8_lossy(input);
    match crate::fnconfig::parse(dir, &text) {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("fn.config.json in {}: ", dir.display())), "error does not name the file: {msg}");
            assert!(e.dir == dir && !e.problems.is_empty() && e.problems.iter().all(|p| !p.is_empty()), "empty problem: {msg}");
        }
        Ok(config) => {
            if let Some(t) = config.timeout_ms {
                assert!((1..=crate::fnconfig::MAX_TIMEOUT_MS).contains(&t), "timeout_ms {t} accepted");
            }
            if let Some(b) = config.max_body_bytes {
                assert!((1..=crate::fnconfig::MAX_BODY_BYTES).contains(&b), "max_body_bytes {b} accepted");
            }
            for route in &config.routes {
                assert_eq!(crate::fnconfig::normalize_route(route).as_deref(), Ok(route.as_str()), "route not normalised");
                assert!(!crate::discover::is_reserved(route), "reserved route {route} accepted");
            }
            if let Some(entry) = &config.entrypoint {
                assert!(!entry.starts_with('/') && !entry.split('/').any(|s| s == ".."), "entrypoint {entry} escapes");
            }
            if let Some(name) = &config.name {
                assert!(!name.is_empty() && !name.split('/').any(|s| s.is_empty() || s == ".."), "name {name} accepted");
            }
        }
    }
}

#[test]
fn fuzz_fn_config() {
    run(Target { name: "fn_config", generate: &gen_fn_config, dict: FN_CONFIG_DICT, exec: &check_fn_config, hang_after: Duration::from_secs(5) });
}

// ---------------------------------------------------------------------------------------------------------------
// fn.env.json

const FN_ENV_DICT: &[&[u8]] = &[b"\"value\":", b"\"is_secret\":true", b"\"API_KEY\":", b"{\"value\":null}", b"\"1A\":"];

fn gen_fn_env_value(rng: &mut Rng) -> Value {
    let keys = ["API_KEY", "PLAIN", "DB_PASSWORD", "github_token", "REGION", "_X", "A1", "1A", "", "a-b", "é", "NUM", "FLAG"];
    let mut map = Map::new();
    for _ in 0..rng.below(6) {
        let key = if rng.one_in(8) { "K".repeat(120 + rng.below(20)) } else { rng.pick(&keys).to_string() };
        let value = match rng.below(7) {
            0 => Value::String(gen_string(rng)),
            1 => gen_number(rng),
            2 => Value::Bool(rng.one_in(2)),
            3 => Value::Null,
            4 => json!({"value": gen_string(rng), "is_secret": rng.one_in(2)}),
            5 => {
                let mut entry = Map::new();
                for (k, v) in [("value", gen_json(rng, 3)), ("is_secret", gen_json(rng, 3)), ("secret", json!(true))] {
                    if rng.one_in(2) {
                        entry.insert(k.into(), v);
                    }
                }
                Value::Object(entry)
            }
            _ => gen_json(rng, 2),
        };
        map.insert(key, value);
    }
    Value::Object(map)
}

fn gen_fn_env(rng: &mut Rng) -> Vec<u8> {
    let value = if rng.one_in(10) { gen_json(rng, 0) } else { gen_fn_env_value(rng) };
    to_text(rng, &value)
}

fn check_fn_env(input: &[u8]) {
    use crate::secrets;
    let dir = Path::new(DIRS[input.len() % DIRS.len()]);
    let text = String::from_utf8_lossy(input);
    match secrets::parse(dir, &text) {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("fn.env.json in {}: ", dir.display())), "error does not name the file: {msg}");
        }
        Ok(env) => {
            for (key, value) in &env {
                assert!(!key.is_empty() && !key.starts_with(|c: char| c.is_ascii_digit()), "key `{key}` accepted");
                assert!(!secrets::looks_secret(key) || value.is_secret, "`{key}` looks secret but is not");
            }
            // The file form reads back as the same environment.
            let round = secrets::parse(dir, &secrets::to_file_json(&env));
            assert_eq!(round.as_ref(), Ok(&env), "to_file_json does not round-trip");
            // API answers never show a secret.
            let view = secrets::masked(&env);
            for (key, value) in env.iter().filter(|(_, v)| v.is_secret) {
                assert_eq!(view[key.as_str()]["value"], secrets::HIDDEN, "`{key}` is shown");
                let masks = secrets::mask_set(std::iter::once(value.value.as_str()));
                let related = secrets::HIDDEN.contains(value.value.as_str()) || value.value.contains(secrets::HIDDEN);
                if value.value.len() >= secrets::MIN_MASKED_LEN && !related {
                    let line = secrets::mask_line(&format!("[{}]", value.value), &masks);
                    assert!(!line.contains(value.value.as_str()), "`{key}` not masked in a log line: {line}");
                }
            }
        }
    }
}

#[test]
fn fuzz_fn_env() {
    run(Target { name: "fn_env", generate: &gen_fn_env, dict: FN_ENV_DICT, exec: &check_fn_env, hang_after: Duration::from_secs(5) });
}

// ---------------------------------------------------------------------------------------------------------------
// fastfn.toml

const TOML_DICT: &[&[u8]] = &[
    b"[console]\n", b"[defaults]\n", b"[binaries]\n", b"[worker_limits]\n", b"[[console]]\n", b" = ", b"\"\"\"", b"'''",
    b"a.b.c.d.e.f.g.h = 1\n", b"{ x = { y = { z = 1 } } }", b"1979-05-27T07:32:00Z", b"0x7FFFFFFFFFFFFFFF", b"+inf", b"nan",
];

fn gen_toml(rng: &mut Rng) -> Vec<u8> {
    let values = [
        "\"0.0.0.0:9000\"", "\"\"", "42", "0", "-1", "9223372036854775807", "true", "false", "1.5", "inf", "nan",
        "1979-05-27T07:32:00Z", "[\"python\", \"node\"]", "[\"a,b\"]", "[1, 2]", "[]", "{ x = 1 }", "\"\"\"multi\nline\"\"\"",
        "'literal'", "\"auto\"", "\"s3cret-token-value-0123456789\"",
    ];
    let mut out = String::new();
    let mut section = String::new();
    for _ in 0..rng.below(10) {
        if rng.one_in(4) {
            section = rng.pick(&["", "defaults", "console", "binaries", "worker_limits", "nope", "defaults.x"]).to_string();
            if section.is_empty() {
                continue; // a top-level key cannot follow a table header
            }
            out.push_str(&format!("[{section}]\n"));
        }
        let key = crate::config_file::KEYS[rng.below(crate::config_file::KEYS.len())].path;
        let key = match key.split_once('.') {
            Some((s, k)) if s == section => k.to_string(),
            _ if !section.is_empty() => key.rsplit('.').next().unwrap_or(key).to_string(),
            _ => key.to_string(),
        };
        let key = if rng.one_in(8) { format!("{key}s") } else { key };
        out.push_str(&format!("{key} = {}\n", rng.pick(&values)));
    }
    out.into_bytes()
}

fn check_toml(input: &[u8]) {
    let path = Path::new(if input.len().is_multiple_of(2) { "/srv/fns/fastfn.toml" } else { "/srv/we ird [x]/fastfn.toml" });
    let text = String::from_utf8_lossy(input);
    match crate::config_file::parse(path, &text) {
        Err(problems) => {
            assert!(!problems.is_empty(), "an error without problems");
            let prefix = format!("{}: ", path.display());
            for problem in &problems {
                assert!(problem.starts_with(&prefix), "problem does not name the file: {problem}");
            }
        }
        Ok(values) => {
            assert_eq!(values.path, path);
            for key in crate::config_file::KEYS {
                if let Some(value) = values.get(key.path) {
                    assert!(key.kind != crate::config_file::Kind::Bool || value == "0" || value == "1", "{}: {value}", key.path);
                }
            }
        }
    }
}

#[test]
fn fuzz_fastfn_toml() {
    run(Target { name: "fastfn_toml", generate: &gen_toml, dict: TOML_DICT, exec: &check_toml, hang_after: Duration::from_secs(5) });
}

// ---------------------------------------------------------------------------------------------------------------
// The frame codec.

/// Counts the largest single allocation made by this thread while `TRACKING` is set, so the frame target can prove
/// that a length over the maximum is refused before anything is allocated for it.
struct CountingAlloc;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation(size: usize) {
    // `try_with`: the thread-locals may already be gone while a thread exits.
    let _ = TRACKING.try_with(|on| {
        if on.get() {
            let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's layout and pointer unchanged; the bookkeeping only
// touches const-initialised thread-locals of `Copy` types, which never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` through this allocator with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation(new_size);
        // SAFETY: as for `dealloc`; the caller guarantees `new_size` is valid for `layout`'s alignment.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// A peer that delivers its bytes in small pieces, sometimes not ready yet, and maybe fails instead of a clean end.
struct Peer<'a> {
    data: &'a [u8],
    pos: usize,
    pattern: u8,
    polls: usize,
}

impl tokio::io::AsyncRead for Peer<'_> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        self.polls += 1;
        if self.pattern & 1 == 1 && self.polls.is_multiple_of(3) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if self.pos == self.data.len() && self.pattern & 0x80 != 0 {
            return Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()));
        }
        let chunk = match self.pattern & 0x0E {
            0 => usize::MAX,
            n => usize::from(n) * (1 + self.polls % 3) / 2,
        };
        let n = chunk.min(self.data.len() - self.pos).min(buf.remaining());
        let end = self.pos + n;
        buf.put_slice(&self.data[self.pos..end]);
        self.pos = end;
        Poll::Ready(Ok(()))
    }
}

const FRAME_MAXIMA: [u32; 5] = [2, 7, 64, 1024, crate::frame::MAX_CONTROL_FRAME];

/// Floats may come back one unit in the last place off (serde_json parses without `float_roundtrip`).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= f64::EPSILON * 4.0 * x.abs().max(y.abs()),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b)),
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w))),
        _ => a == b,
    }
}

/// Input: a byte choosing the maximum, a byte shaping the peer, then the stream.
fn check_frames(input: &[u8]) {
    use crate::frame::{self, FrameError};
    let (max, pattern, stream) = match input {
        [m, p, rest @ ..] => (FRAME_MAXIMA[usize::from(*m) % FRAME_MAXIMA.len()], *p, rest),
        _ => (1024, 0, input),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => panic!("no runtime: {e}"),
    };

    // A body on its own: an object, or an error; an object survives encode → read.
    if let Ok(map) = frame::decode_body(stream) {
        let bytes = frame::encode(&map);
        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        assert_eq!(len as usize, bytes.len() - 4, "length header");
        let back = runtime.block_on(frame::read(&mut &bytes[..], len.max(2)));
        match back {
            Ok(back) => assert!(same_json(&Value::Object(back), &Value::Object(map)), "round trip changed the message"),
            Err(e) => panic!("an encoded object does not read back: {e}"),
        }
    }

    // The stream as frames, until the first error.
    let mut peer = Peer { data: stream, pos: 0, pattern, polls: 0 };
    let mut frames = 0usize;
    loop {
        let before = peer.pos;
        let header = stream.get(before..before + 4).map(|h| u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
        TRACKING.with(|t| t.set(true));
        LARGEST.with(|l| l.set(0));
        let result = runtime.block_on(frame::read(&mut peer, max));
        TRACKING.with(|t| t.set(false));
        let largest = LARGEST.with(Cell::get);
        let consumed = peer.pos - before;
        // Nothing read for a frame is allocated beyond what its accepted length allows.
        let allowed = 2 * max as usize + 16 * 1024;
        assert!(largest <= allowed, "read allocated {largest} bytes with max {max}");
        match result {
            Ok(map) => {
                let len = header.unwrap_or_else(|| panic!("a frame without a header"));
                assert!((2..=max).contains(&len), "accepted length {len} over max {max}");
                assert_eq!(consumed, 4 + len as usize, "consumed more or less than one frame");
                assert!(frame::decode_body(&stream[before + 4..before + 4 + len as usize]).is_ok_and(|m| m == map));
                frames += 1;
            }
            Err(FrameError::BadLength { len, max: m }) => {
                assert_eq!((Some(len), m), (header, max), "reported length");
                assert!(!(2..=max).contains(&len), "refused a good length {len}");
                assert_eq!(consumed, 4, "read body bytes of a refused frame");
                break;
            }
            Err(FrameError::Closed) => {
                assert_eq!((before, consumed), (stream.len(), 0), "clean close in the middle");
                assert_eq!(pattern & 0x80, 0, "a failed peer reported as a clean close");
                break;
            }
            Err(FrameError::NotAnObject(_)) => {
                let len = header.unwrap_or_else(|| panic!("a body without a header"));
                assert_eq!(consumed, 4 + len as usize, "bad body not consumed exactly");
                break;
            }
            Err(FrameError::Io(_)) => {
                let short = stream.len() - before < 4 || header.is_some_and(|len| stream.len() - before < 4 + len as usize);
                assert!(short || pattern & 0x80 != 0, "i/o error on a complete frame");
                break;
            }
        }
        assert!(frames <= stream.len() / 6, "more frames than bytes allow");
    }
}

fn gen_frames(rng: &mut Rng) -> Vec<u8> {
    let mut out = vec![rng.next() as u8, rng.next() as u8];
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 | 1 => {
                let map = crate::frame::object(gen_json(rng, 3));
                out.extend(crate::frame::encode(&map));
            }
            2 => {
                let value = gen_json(rng, 0);
                let body = to_text(rng, &value);
                out.extend((body.len() as u32).to_be_bytes());
                out.extend(body);
            }
            3 => out.extend(rng.pick(INTERESTING_U32).to_be_bytes()),
            _ => out.extend(crate::frame::encode(&crate::frame::object(json!({"op": "start", "fn": gen_string(rng), "n": gen_number(rng)})))),
        }
    }
    out
}

#[test]
fn fuzz_frame_codec() {
    run(Target { name: "frame_codec", generate: &gen_frames, dict: &[b"{}", b"\x00\x00\x00\x02{}"], exec: &check_frames, hang_after: Duration::from_secs(5) });
}

// ---------------------------------------------------------------------------------------------------------------
// Discovery over generated trees.
//
// An input is a text tree, one entry a line: `D path`, `F path content` or `L path target` (a symlink), with
// `\xNN`, `\n`, `\\` and `\s` escapes, so a crash file is readable and replayable. The parser is lenient: byte
// mutations of a tree give other trees. Paths stay inside the tree (no `..` or absolute paths; symlink targets may
// climb only as far as the tree's root), so loops are possible but escapes are not.

fn escape(bytes: &[u8]) -> String {
    let mut out = String::new();
    for b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b' ' => out.push_str("\\s"),
            0x21..=0x7E => out.push(char::from(*b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

fn unescape(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'\\' && i + 1 < text.len() {
            match text[i + 1] {
                b'n' => out.push(b'\n'),
                b's' => out.push(b' '),
                b'x' if i + 3 < text.len() => {
                    if let Some(b) = std::str::from_utf8(&text[i + 2..i + 4]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        out.push(b);
                        i += 4;
                        continue;
                    }
                    out.push(b'x');
                }
                other => out.push(other),
            }
            i += 2;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

#[derive(Debug)]
enum Entry {
    Dir(Vec<Vec<u8>>),
    File(Vec<Vec<u8>>, Vec<u8>),
    Link(Vec<Vec<u8>>, Vec<u8>),
}

fn components(raw: &[u8]) -> Vec<Vec<u8>> {
    unescape(raw)
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b"." && *c != b".." && !c.contains(&0))
        .map(|c| c[..c.len().min(200)].to_vec())
        .take(14)
        .collect()
}

fn parse_tree(input: &[u8]) -> Vec<Entry> {
    let mut entries = Vec::new();
    for line in input.split(|b| *b == b'\n').take(300) {
        let mut parts = line.splitn(3, |b| *b == b' ');
        let (kind, path, rest) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        let path = components(path);
        if path.is_empty() {
            continue;
        }
        match kind {
            b"D" => entries.push(Entry::Dir(path)),
            b"F" => entries.push(Entry::File(path, unescape(rest).into_iter().take(256 * 1024).collect())),
            b"L" => {
                // Resolve the target against the link's folder; refuse targets outside the tree.
                let target = unescape(rest);
                if target.is_empty() || target.starts_with(b"/") || target.contains(&0) {
                    continue;
                }
                let mut at = path.len() as i64 - 1;
                let mut inside = true;
                for part in target.split(|b| *b == b'/') {
                    match part {
                        b".." => at -= 1,
                        b"" | b"." => {}
                        _ => at += 1,
                    }
                    if at < 0 {
                        inside = false;
                    }
                }
                if inside {
                    entries.push(Entry::Link(path, target));
                }
            }
            _ => {}
        }
    }
    entries
}

fn build_tree(root: &Path, entries: &[Entry]) {
    use std::os::unix::ffi::OsStrExt;
    let join = |parts: &[Vec<u8>]| parts.iter().fold(root.to_path_buf(), |p, c| p.join(std::ffi::OsStr::from_bytes(c)));
    for entry in entries {
        // Conflicting entries (a file where a folder is wanted) simply fail; the tree is whatever was made.
        let _ = match entry {
            Entry::Dir(path) => std::fs::create_dir_all(join(path)),
            Entry::File(path, content) => {
                let target = join(path);
                let _ = target.parent().map(std::fs::create_dir_all);
                std::fs::write(target, content)
            }
            Entry::Link(path, to) => {
                let target = join(path);
                let _ = target.parent().map(std::fs::create_dir_all);
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(to), target)
            }
        };
    }
}

const DIR_NAMES: &[&[u8]] = &[
    b"python", b"node", b"php", b"lua", b"go", b"rust", b"users", b"api", b"[id]", b"[...slug]", b"[[...opt]]", b"v2", b"1.2.0",
    b"node_modules", b".hidden", b"_private", b"src", b"a b", "ünï".as_bytes(), b"x]", b"[", b"_fn", b"console", b"Hello_World",
    b"index", b"_", b"-", b"handler", b"\xff\xfe", b"a.b", b"@v2", b"[ID]", b"[a-b]",
];
const FILE_BASES: &[&str] = &["index", "handler", "main", "[id]", "[...slug]", "[[...opt]]", "users", "x.y", "_helper", "a.test", "[[...a]].[b]", "[a]x", "get", "HEAD", "a]"];
const EXTENSIONS: &[&str] = &[".py", ".js", ".ts", ".php", ".lua", ".go", ".rs", ".txt", "", ".d.ts"];
const METHODS: &[&str] = &["", "", "get.", "post.", "put.", "patch.", "delete.", "GET.", "get.post."];

fn gen_name(rng: &mut Rng) -> Vec<u8> {
    match rng.below(8) {
        0 => rng.pick(&["handler.py", "main.py", "index.js", "handler.js", "main.go", "handler.php", "main.lua", "handler.rs"]).as_bytes().to_vec(),
        1 => rng.pick(&["fn.config.json", "fn.routes.json", "fn.env.json"]).as_bytes().to_vec(),
        2 => (0..1 + rng.below(6)).map(|_| rng.next() as u8).filter(|b| *b != b'/' && *b != 0).collect(),
        _ => format!("{}{}{}", rng.pick(METHODS), rng.pick(FILE_BASES), rng.pick(EXTENSIONS)).into_bytes(),
    }
}

fn gen_routes_manifest(rng: &mut Rng, files: &[String]) -> Value {
    let mut routes = Map::new();
    for _ in 0..rng.below(5) {
        let key = rng.pick(&["GET,POST /things", "/x/:id", "BAD /y", "/_fn/x", "*", "get /lower", "PUT  /a/*", "", "/a/*/b", "DELETE,GET /[id]"]).to_string();
        let target = if !files.is_empty() && rng.one_in(2) { Value::String(rng.pick(files).clone()) } else { json!(*rng.pick(&["things.js", "../x.py", "/abs.py", "", "a//b.py", "x.rs"])) };
        routes.insert(key, if rng.one_in(8) { gen_json(rng, 3) } else { target });
    }
    if rng.one_in(8) {
        gen_json(rng, 0)
    } else {
        json!({ "routes": routes })
    }
}

/// Structured content for the special files, sometimes cut short like a half-written file.
fn gen_content(rng: &mut Rng, name: &[u8], files: &[String]) -> Vec<u8> {
    let mut bytes = match name {
        b"fn.config.json" => gen_fn_config(rng),
        b"fn.env.json" => gen_fn_env(rng),
        b"fn.routes.json" => {
            let manifest = gen_routes_manifest(rng, files);
            to_text(rng, &manifest)
        }
        _ => b"x".to_vec(),
    };
    if rng.one_in(4) {
        let keep = rng.below(bytes.len() + 1);
        bytes.truncate(keep);
    }
    if rng.one_in(6) {
        mutate(rng, &mut bytes, FN_CONFIG_DICT, &[]);
    }
    bytes
}

fn gen_tree(rng: &mut Rng) -> Vec<u8> {
    let mut dirs: Vec<Vec<Vec<u8>>> = vec![Vec::new()];
    let mut lines = Vec::new();
    let mut files: Vec<String> = Vec::new();
    for _ in 0..1 + rng.below(14) {
        let parent = rng.pick(&dirs).clone();
        let join = |parts: &[Vec<u8>]| parts.iter().map(|p| escape(p)).collect::<Vec<_>>().join("/");
        match rng.below(10) {
            0..=2 if parent.len() < 9 => {
                let mut dir = parent.clone();
                dir.push(rng.pick(DIR_NAMES).to_vec());
                lines.push(format!("D {}", join(&dir)));
                dirs.push(dir);
            }
            3 => {
                // A symlink: to a folder above (a loop), to itself, to a sibling, or dangling.
                let mut link = parent.clone();
                link.push(rng.pick(DIR_NAMES).to_vec());
                let up = rng.below(parent.len() + 1);
                let target = match rng.below(5) {
                    0 => ".".to_string(),
                    1 => "../".repeat(up).trim_end_matches('/').to_string(),
                    2 => {
                        let to = rng.pick(&dirs).clone();
                        format!("{}{}", "../".repeat(up), join(&to))
                    }
                    3 => "missing".to_string(),
                    _ => escape(link.last().map(Vec::as_slice).unwrap_or_default()),
                };
                if !target.is_empty() {
                    lines.push(format!("L {} {}", join(&link), target));
                }
                if rng.one_in(2) {
                    dirs.push(link);
                }
            }
            _ => {
                let name = gen_name(rng);
                let content = gen_content(rng, &name, &files);
                files.push(String::from_utf8_lossy(&name).into_owned());
                let mut path = parent.clone();
                path.push(name);
                lines.push(format!("F {} {}", join(&path), escape(&content)));
            }
        }
    }
    // Often a broken or truncated config file at the root, where discovery always reads it.
    if rng.one_in(2) {
        let name = rng.pick(&["fn.config.json", "fn.routes.json", "fn.env.json"]).as_bytes();
        let content = gen_content(rng, name, &files);
        lines.push(format!("F {} {}", escape(name), escape(&content)));
    }
    lines.join("\n").into_bytes()
}

const TREE_DICT: &[&[u8]] = &[b"\nD ", b"\nF ", b"\nL ", b"/", b"fn.config.json", b"fn.routes.json", b"fn.env.json", b"\\s", b"\\xff", b"../", b"[...", b"]]"];

fn check_discovery(input: &[u8], scratch: &Path) {
    use crate::{discover, fnconfig, secrets};
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let root = scratch.join(format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed)));
    if let Err(e) = std::fs::create_dir(&root) {
        panic!("cannot create {}: {e}", root.display());
    }
    build_tree(&root, &parse_tree(input));
    let shown = root.display().to_string();
    let options = discover::Options {
        force_url: input.len().is_multiple_of(3),
        ignore_dirs: if input.len().is_multiple_of(5) { vec!["users".into()] } else { Vec::new() },
        runtimes: if input.len().is_multiple_of(7) { Some(vec![crate::types::Runtime::Python]) } else { None },
    };
    let result = discover::discover_with(&root, options);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let found = match result {
            Ok(found) => found,
            Err(e) => panic!("discovery of an existing folder failed: {e}"),
        };
        // Every problem about a file names it, with its folder.
        for warning in &found.warnings {
            for file in [fnconfig::FILE_NAME, "fn.routes.json", secrets::FILE_NAME] {
                if warning.contains(&format!("{file} in ")) {
                    assert!(warning.contains(&format!("{file} in {shown}")), "warning does not name the folder: {warning}");
                }
            }
        }
        // The root's fn.config.json is always read: an invalid one is reported, naming the file.
        if let Err(e) = fnconfig::read(&root) {
            let expected = e.to_string();
            assert!(found.warnings.iter().any(|w| w.starts_with(&expected)), "invalid root {} not reported: {expected}", fnconfig::FILE_NAME);
        }
        // The root's fn.routes.json too: anything there that is not `{"routes": {...}}` is reported.
        // A missing (or dangling) manifest is no manifest, as a missing fn.config.json is no config.
        let manifest = root.join("fn.routes.json");
        let valid = match std::fs::read(&manifest) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(_) => false,
            Ok(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|text| serde_json::from_str::<Value>(text).ok())
                .is_some_and(|v| v.get("routes").is_some_and(Value::is_object)),
        };
        if !valid {
            let prefix = format!("fn.routes.json in {shown}: ");
            assert!(found.warnings.iter().any(|w| w.starts_with(&prefix)), "invalid root fn.routes.json not reported: {:?}", found.warnings);
        }
        // fn.env.json is read per function folder (and would be at the root): errors name the file and folder.
        let mut dirs: BTreeSet<PathBuf> = found.functions.iter().map(|f| f.dir.clone()).collect();
        dirs.insert(root.clone());
        for dir in dirs {
            if let Err(e) = secrets::read(&dir) {
                let msg = e.to_string();
                assert!(msg.starts_with(&format!("{} in {}: ", secrets::FILE_NAME, dir.display())), "fn.env.json error: {msg}");
            }
        }
        let ids: BTreeSet<&str> = found.functions.iter().map(|f| f.id.as_str()).collect();
        for function in &found.functions {
            if let Some(why) = &function.config_error {
                assert!(why.starts_with(&format!("{} in {shown}", fnconfig::FILE_NAME)), "config error does not name the file: {why}");
            }
            assert!(function.entry.starts_with(&root), "entry outside the tree: {}", function.entry.display());
        }
        for route in &found.routes {
            assert!(ids.contains(route.function.as_str()), "route {} without a function", route.path);
            assert!(!route.methods.is_empty(), "route {} without methods", route.path);
            assert!(!discover::is_reserved(&route.path), "reserved route {} published", route.path);
            assert_eq!(fnconfig::normalize_route(&route.path).as_deref(), Ok(route.path.as_str()), "route is not normalised");
            assert!(!found.conflicts.contains(&route.path), "conflicting route {} still published", route.path);
        }
    }));
    let _ = std::fs::remove_dir_all(&root);
    if let Err(payload) = outcome {
        std::panic::resume_unwind(payload);
    }
}

#[test]
fn fuzz_discovery() {
    let scratch = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("no temp dir: {e}"),
    };
    let exec = |input: &[u8]| check_discovery(input, scratch.path());
    run(Target { name: "discovery", generate: &gen_tree, dict: TREE_DICT, exec: &exec, hang_after: Duration::from_secs(30) });
}

#[test]
fn tree_inputs_round_trip_their_escapes() {
    let raw = b"a b\\\n\xff/x".to_vec();
    assert_eq!(unescape(escape(&raw).as_bytes()), raw);
    let tree = parse_tree(b"D a/../b\nL b/up ../..\nL b/ok ..\nF c\\sd/fn.config.json {\\n");
    assert!(matches!(&tree[0], Entry::Dir(p) if p == &vec![b"a".to_vec(), b"b".to_vec()]));
    assert!(matches!(&tree[1], Entry::Link(p, t) if p.len() == 2 && t == b".."), "the escaping link is dropped: {tree:?}");
    assert!(matches!(&tree[2], Entry::File(p, c) if p[0] == b"c d" && c == b"{\n"));
}

#[test]
fn the_allocation_tracker_sees_a_large_buffer() {
    TRACKING.with(|t| t.set(true));
    LARGEST.with(|l| l.set(0));
    let buffer = std::hint::black_box(vec![0u8; 3 << 20]);
    TRACKING.with(|t| t.set(false));
    assert!(LARGEST.with(Cell::get) >= buffer.len(), "the frame target's allocation check would be vacuous");
}
