//! `fn.env.json`: a function's environment values and which of them are secret (DESIGN decision 7). The supervisor
//! reads them at discovery into a secrets file only the gateway can read (never into the catalog); the gateway
//! hands each function its own values in `event.env`. Secret values are `<hidden>` in every API answer and masked
//! in every log line fastfn writes.
//!
//! Format: `{"KEY": "value" | 5 | true | null | {"value": <scalar or null>, "is_secret": bool}}`. Scalars become
//! strings (`5` → `"5"`, `true` → `"true"`); `null` drops the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

pub const FILE_NAME: &str = "fn.env.json";
pub const HIDDEN: &str = "<hidden>";
/// Secret values shorter than this are not masked in logs: masking "1" would garble every line.
pub const MIN_MASKED_LEN: usize = 4;
/// Key names that mark a value secret even without `is_secret` (case-insensitive substrings).
const SECRET_KEY_HINTS: &[&str] = &["secret", "token", "password", "passwd", "pwd", "api_key", "apikey", "private_key", "auth", "credential"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvValue {
    pub value: String,
    pub is_secret: bool,
}

/// A function's environment, by key.
pub type Env = BTreeMap<String, EnvValue>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{} in {}: {problem}", FILE_NAME, dir.display())]
pub struct EnvError {
    pub dir: PathBuf,
    pub problem: String,
}

pub fn looks_secret(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    SECRET_KEY_HINTS.iter().any(|hint| lower.contains(hint))
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 128 && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !key.starts_with(|c: char| c.is_ascii_digit())
}

fn scalar(value: &Value) -> Option<Option<String>> {
    match value {
        Value::Null => Some(None),
        Value::String(s) => Some(Some(s.clone())),
        Value::Number(n) => Some(Some(n.to_string())),
        Value::Bool(b) => Some(Some(b.to_string())),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// Parses the JSON text of a `fn.env.json` in `dir`. Every problem names the key.
pub fn parse(dir: &Path, text: &str) -> Result<Env, EnvError> {
    let err = |problem: String| EnvError { dir: dir.to_path_buf(), problem };
    let root: Value = serde_json::from_str(text).map_err(|e| err(format!("not valid JSON ({e})")))?;
    let Value::Object(map) = root else { return Err(err("the top level must be an object".into())) };
    let mut env = Env::new();
    for (key, raw) in map {
        if !valid_key(&key) {
            return Err(err(format!("`{key}` is not a valid variable name (letters, digits and `_`, not starting with a digit)")));
        }
        let (value, marked) = match &raw {
            Value::Object(entry) => {
                if let Some(extra) = entry.keys().find(|k| *k != "value" && *k != "is_secret") {
                    return Err(err(format!("`{key}`: unknown field `{extra}` (expected `value` and `is_secret`)")));
                }
                let marked = match entry.get("is_secret") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => return Err(err(format!("`{key}.is_secret` must be true or false"))),
                };
                let value = scalar(entry.get("value").unwrap_or(&Value::Null)).ok_or_else(|| err(format!("`{key}.value` must be a string, number, boolean or null")))?;
                (value, marked)
            }
            other => (scalar(other).ok_or_else(|| err(format!("`{key}` must be a string, number, boolean, null or {{\"value\", \"is_secret\"}}")))?, false),
        };
        if let Some(value) = value {
            let is_secret = marked || looks_secret(&key);
            env.insert(key, EnvValue { value, is_secret });
        }
    }
    Ok(env)
}

/// Reads `dir/fn.env.json`; a missing file is an empty environment.
pub fn read(dir: &Path) -> Result<Env, EnvError> {
    match std::fs::read_to_string(dir.join(FILE_NAME)) {
        Ok(text) => parse(dir, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Env::new()),
        Err(e) => Err(EnvError { dir: dir.to_path_buf(), problem: format!("cannot be read ({e})") }),
    }
}

/// What an API answer shows: secret values replaced by `<hidden>`.
pub fn masked(env: &Env) -> Value {
    let map: Map<String, Value> = env
        .iter()
        .map(|(k, v)| {
            let shown = if v.is_secret { HIDDEN.to_string() } else { v.value.clone() };
            (k.clone(), serde_json::json!({"value": shown, "is_secret": v.is_secret}))
        })
        .collect();
    Value::Object(map)
}

/// Applies a `PUT` body to `current`: `null` deletes a key; `"<hidden>"` (alone or as `value`) keeps the stored value
/// **and** its secrecy (upstream un-marked it); anything else replaces the entry.
pub fn merge(dir: &Path, current: &Env, update: &Value) -> Result<Env, EnvError> {
    let err = |problem: String| EnvError { dir: dir.to_path_buf(), problem };
    let Value::Object(changes) = update else { return Err(err("the request body must be a JSON object of keys".into())) };
    let mut next = current.clone();
    let mut fresh = Map::new();
    for (key, change) in changes {
        let keeps = match change {
            Value::String(s) => s == HIDDEN,
            Value::Object(o) => o.get("value").and_then(Value::as_str) == Some(HIDDEN),
            _ => false,
        };
        if keeps {
            let Some(existing) = current.get(key) else { return Err(err(format!("`{key}` has no stored value for `{HIDDEN}` to keep"))) };
            let still_secret = existing.is_secret || matches!(change.get("is_secret"), Some(Value::Bool(true)));
            next.insert(key.clone(), EnvValue { value: existing.value.clone(), is_secret: still_secret });
        } else if change.is_null() {
            next.remove(key);
        } else {
            fresh.insert(key.clone(), change.clone());
        }
    }
    let parsed = parse(dir, &Value::Object(fresh).to_string())?;
    next.extend(parsed);
    Ok(next)
}

/// The file form of an environment (secrets keep their mark).
pub fn to_file_json(env: &Env) -> String {
    let map: Map<String, Value> = env
        .iter()
        .map(|(k, v)| {
            let value = if v.is_secret { serde_json::json!({"value": v.value, "is_secret": true}) } else { Value::String(v.value.clone()) };
            (k.clone(), value)
        })
        .collect();
    serde_json::to_string_pretty(&Value::Object(map)).unwrap_or_default() + "\n"
}

/// Replaces every secret value (and its base64 forms) in `line` by `<hidden>`.
pub fn mask_line(line: &str, secrets: &[String]) -> String {
    let mut out = line.to_string();
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), HIDDEN);
        }
    }
    out
}

/// The strings to mask for a set of secret values: each value and its standard base64 encodings.
pub fn mask_set<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut set: Vec<String> = Vec::new();
    for value in values.filter(|v| v.len() >= MIN_MASKED_LEN) {
        set.push(value.to_string());
        let b64 = base64(value.as_bytes());
        set.push(b64.trim_end_matches('=').to_string());
    }
    // Longest first, so a secret that contains another is masked whole.
    set.sort_by_key(|s| std::cmp::Reverse(s.len()));
    set.dedup();
    set
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> &'static Path {
        Path::new("/f/api")
    }

    #[test]
    fn parses_scalars_objects_and_nulls() {
        let env = parse(dir(), r#"{"API_KEY":{"value":"s3cret","is_secret":true},"PLAIN":"p","NUM":5,"FLAG":true,"NUL":null,"GONE":{"value":null}}"#).expect("valid");
        assert_eq!(env.len(), 4);
        assert_eq!(env["API_KEY"], EnvValue { value: "s3cret".into(), is_secret: true });
        assert_eq!(env["NUM"].value, "5");
        assert_eq!(env["FLAG"].value, "true");
        assert!(!env["PLAIN"].is_secret);
    }

    #[test]
    fn secret_looking_keys_are_secret_without_the_mark() {
        let env = parse(dir(), r#"{"DB_PASSWORD":"x","github_token":"y","REGION":"eu"}"#).expect("valid");
        assert!(env["DB_PASSWORD"].is_secret && env["github_token"].is_secret && !env["REGION"].is_secret);
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        for (text, needle) in [
            ("[1]", "top level"),
            ("{", "not valid JSON"),
            (r#"{"A":[1]}"#, "`A` must be"),
            (r#"{"A":{"value":"x","secret":true}}"#, "unknown field `secret`"),
            (r#"{"A":{"value":"x","is_secret":"yes"}}"#, "`A.is_secret`"),
            (r#"{"1A":"x"}"#, "`1A` is not a valid variable name"),
        ] {
            let e = parse(dir(), text).expect_err(text);
            let msg = e.to_string();
            assert!(msg.starts_with("fn.env.json in /f/api: ") && msg.contains(needle), "{msg}");
        }
    }

    #[test]
    fn masked_views_hide_secrets() {
        let env = parse(dir(), r#"{"API_KEY":{"value":"s3cret","is_secret":true},"PLAIN":"p"}"#).expect("valid");
        let view = masked(&env);
        assert_eq!(view["API_KEY"], serde_json::json!({"value": "<hidden>", "is_secret": true}));
        assert_eq!(view["PLAIN"]["value"], "p");
        assert!(!view.to_string().contains("s3cret"));
    }

    #[test]
    fn hidden_keeps_the_value_and_its_secrecy() {
        let current = parse(dir(), r#"{"KEY":{"value":"s3cret","is_secret":true},"OLD":"o"}"#).expect("valid");
        let next = merge(dir(), &current, &serde_json::json!({"KEY": {"value": "<hidden>"}, "OLD": null, "NEW": "n"})).expect("merge");
        assert_eq!(next["KEY"], EnvValue { value: "s3cret".into(), is_secret: true }, "still secret without is_secret");
        assert!(!next.contains_key("OLD"));
        assert_eq!(next["NEW"].value, "n");
        assert!(merge(dir(), &current, &serde_json::json!({"MISSING": "<hidden>"})).is_err());
        let round = parse(dir(), &to_file_json(&next)).expect("file form parses");
        assert_eq!(round, next);
    }

    #[test]
    fn masks_values_and_base64_forms() {
        let set = mask_set(["s3cret-value", "ab"].into_iter());
        assert_eq!(set.len(), 2, "short values are not masked: {set:?}");
        let line = format!("got s3cret-value and {}", base64(b"s3cret-value"));
        let out = mask_line(&line, &set);
        assert!(!out.contains("s3cret-value") && !out.contains(base64(b"s3cret-value").trim_end_matches('=')), "{out}");
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
    }
}
