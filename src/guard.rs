//! Control-plane guard settings: the switches, the admin token, trusted networks, allowed host names and rate
//! limits, read strictly from the environment (a flag that is not `1/true/yes/on` or `0/false/no/off` is an error
//! naming the variable, where upstream silently used the default). The Lua guard enforces them (lua/fastfn/guard.lua).
//!
//! The admin token itself never reaches the gateway's settings file: only a random key and the token's HMAC under
//! it, so the gateway compares MACs of presented tokens, in constant time, without holding the secret.

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use serde::Serialize;

/// Shortest admin token accepted: 24 characters (about 144 bits as hex or base64 from a random source).
pub const MIN_TOKEN_LEN: usize = 24;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GuardSettings {
    pub console_api_enabled: bool,
    pub admin_api_enabled: bool,
    pub ui_enabled: bool,
    pub write_enabled: bool,
    pub local_only: bool,
    pub token: Option<TokenCheck>,
    pub trusted_cidrs: Vec<String>,
    pub trusted_proxy_cidrs: Vec<String>,
    pub allowed_hosts: Vec<String>,
    pub rate_limit: RateLimits,
}

/// What the gateway needs to recognise the admin token: `mac_hex` = HMAC-SHA1(key, token).
#[derive(Clone, Serialize, PartialEq, Eq)]
pub struct TokenCheck {
    pub key_hex: String,
    pub mac_hex: String,
}

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCheck(<hidden>)")
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RateLimits {
    pub window_s: u64,
    pub read_max: u64,
    pub write_max: u64,
    pub auth_fail_max: u64,
    pub auth_fail_window_s: u64,
}

/// The environment variables read here.
pub mod env {
    pub const CONSOLE_API_ENABLED: &str = "FN_CONSOLE_API_ENABLED";
    pub const ADMIN_API_ENABLED: &str = "FN_ADMIN_API_ENABLED";
    pub const UI_ENABLED: &str = "FN_UI_ENABLED";
    pub const WRITE_ENABLED: &str = "FN_CONSOLE_WRITE_ENABLED";
    pub const LOCAL_ONLY: &str = "FN_CONSOLE_LOCAL_ONLY";
    pub const ADMIN_TOKEN: &str = "FN_ADMIN_TOKEN";
    pub const ADMIN_TOKEN_FILE: &str = "FN_ADMIN_TOKEN_FILE";
    pub const TRUSTED_CIDRS: &str = "FN_CONSOLE_TRUSTED_CIDRS";
    pub const TRUSTED_PROXY_CIDRS: &str = "FN_TRUSTED_PROXY_CIDRS";
    pub const ALLOWED_HOSTS: &str = "FN_CONSOLE_ALLOWED_HOSTS";
    pub const RATE_LIMIT_MAX: &str = "FN_CONSOLE_RATE_LIMIT_MAX";
    pub const WRITE_RATE_LIMIT_MAX: &str = "FN_CONSOLE_WRITE_RATE_LIMIT_MAX";
    pub const RATE_LIMIT_WINDOW_S: &str = "FN_CONSOLE_RATE_LIMIT_WINDOW_S";
    pub const LOGIN_RATE_LIMIT_MAX: &str = "FN_CONSOLE_LOGIN_RATE_LIMIT_MAX";
    pub const LOGIN_RATE_LIMIT_WINDOW_S: &str = "FN_CONSOLE_LOGIN_RATE_LIMIT_WINDOW_S";
}

/// Reads the guard settings from `lookup` (the environment in production), collecting every problem.
pub fn from_env(lookup: &dyn Fn(&str) -> Option<String>, problems: &mut Vec<String>) -> GuardSettings {
    let mut flag = |name: &str, default: bool| match lookup(name) {
        None => default,
        Some(v) => parse_flag(&v).unwrap_or_else(|| {
            problems.push(format!("{name} must be one of 1/true/yes/on or 0/false/no/off, got `{v}`"));
            default
        }),
    };
    let console_api_enabled = flag(env::CONSOLE_API_ENABLED, true);
    let admin_api_enabled = flag(env::ADMIN_API_ENABLED, true);
    let ui_enabled = flag(env::UI_ENABLED, false);
    let write_enabled = flag(env::WRITE_ENABLED, false);
    let local_only = flag(env::LOCAL_ONLY, true);

    let token = read_token(lookup, problems).map(|t| token_check(&t, &random_key()));

    let mut number = |name: &str, default: u64| match lookup(name) {
        None => default,
        Some(v) => v.trim().parse::<u64>().unwrap_or_else(|_| {
            problems.push(format!("{name} must be a whole number ≥ 0 (0 turns the limit off), got `{v}`"));
            default
        }),
    };
    let rate_limit = RateLimits {
        window_s: number(env::RATE_LIMIT_WINDOW_S, 60),
        read_max: number(env::RATE_LIMIT_MAX, 120),
        write_max: number(env::WRITE_RATE_LIMIT_MAX, 30),
        auth_fail_max: number(env::LOGIN_RATE_LIMIT_MAX, 5),
        auth_fail_window_s: number(env::LOGIN_RATE_LIMIT_WINDOW_S, 300),
    };

    GuardSettings {
        console_api_enabled,
        admin_api_enabled,
        ui_enabled,
        write_enabled,
        local_only,
        token,
        trusted_cidrs: cidr_list(env::TRUSTED_CIDRS, lookup, problems),
        trusted_proxy_cidrs: cidr_list(env::TRUSTED_PROXY_CIDRS, lookup, problems),
        allowed_hosts: host_list(env::ALLOWED_HOSTS, lookup, problems),
        rate_limit,
    }
}

/// `1/true/yes/on` and `0/false/no/off`, case-insensitive.
pub fn parse_flag(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn read_token(lookup: &dyn Fn(&str) -> Option<String>, problems: &mut Vec<String>) -> Option<String> {
    let (token, source) = match (lookup(env::ADMIN_TOKEN), lookup(env::ADMIN_TOKEN_FILE)) {
        (Some(_), Some(_)) => {
            problems.push(format!("set {} or {}, not both", env::ADMIN_TOKEN, env::ADMIN_TOKEN_FILE));
            return None;
        }
        (Some(token), None) => (token, env::ADMIN_TOKEN.to_string()),
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(text) => (text.trim_end_matches(['\r', '\n']).to_string(), format!("{} (`{path}`)", env::ADMIN_TOKEN_FILE)),
            Err(e) => {
                problems.push(format!("{} `{path}` cannot be read: {e}", env::ADMIN_TOKEN_FILE));
                return None;
            }
        },
        (None, None) => return None,
    };
    let len = token.chars().count();
    if len < MIN_TOKEN_LEN {
        // The value itself is never repeated in a message.
        problems.push(format!(
            "the admin token from {source} is {len} characters; it must be at least {MIN_TOKEN_LEN} (for example: openssl rand -hex 24)"
        ));
        return None;
    }
    if token.chars().any(char::is_control) {
        problems.push(format!("the admin token from {source} contains control characters"));
        return None;
    }
    Some(token)
}

fn random_key() -> [u8; 32] {
    use std::io::Read;
    let mut key = [0u8; 32];
    // The kernel's CSPRNG; if it cannot be read the machine is broken beyond what a fallback should hide.
    if let Err(e) = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut key)) {
        panic!("cannot read /dev/urandom for the admin token key: {e}");
    }
    key
}

pub fn token_check(token: &str, key: &[u8]) -> TokenCheck {
    TokenCheck { key_hex: hex(key), mac_hex: hex(&hmac_sha1(key, token.as_bytes())) }
}

fn hmac_sha1(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so new_from_slice cannot fail here.
    let mut mac = match Hmac::<sha1::Sha1>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn csv(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn cidr_list(name: &str, lookup: &dyn Fn(&str) -> Option<String>, problems: &mut Vec<String>) -> Vec<String> {
    let Some(value) = lookup(name) else { return Vec::new() };
    let mut out = Vec::new();
    for item in csv(&value) {
        match parse_cidr(item) {
            Some(cidr) => out.push(cidr),
            None => problems.push(format!("{name}: `{item}` is not an address or CIDR (like 10.0.0.0/8 or fd00::/8)")),
        }
    }
    out
}

/// Validates `addr[/prefix]` and returns it with an explicit prefix.
pub fn parse_cidr(item: &str) -> Option<String> {
    let (addr, prefix) = match item.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (item, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
    };
    Some(format!("{ip}/{prefix}"))
}

fn host_list(name: &str, lookup: &dyn Fn(&str) -> Option<String>, problems: &mut Vec<String>) -> Vec<String> {
    let Some(value) = lookup(name) else { return Vec::new() };
    let mut out = Vec::new();
    for item in csv(&value) {
        let host = item.to_ascii_lowercase();
        // A name, or a bracketed IPv6 address; never a port (the guard compares the Host header without its port).
        let bracketed_v6 = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
        let name = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if host.len() <= 253 && (name || bracketed_v6) {
            out.push(host);
        } else {
            problems.push(format!("{name}: `{item}` is not a host name (no port, no scheme)"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> (GuardSettings, Vec<String>) {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut problems = Vec::new();
        let settings = from_env(&|k| map.get(k).cloned(), &mut problems);
        (settings, problems)
    }

    #[test]
    fn defaults_are_closed() {
        let (s, problems) = read(&[]);
        assert!(problems.is_empty());
        assert!(s.console_api_enabled && s.admin_api_enabled && s.local_only);
        assert!(!s.ui_enabled && !s.write_enabled);
        assert!(s.token.is_none() && s.trusted_cidrs.is_empty() && s.trusted_proxy_cidrs.is_empty());
        assert_eq!(s.rate_limit, RateLimits { window_s: 60, read_max: 120, write_max: 30, auth_fail_max: 5, auth_fail_window_s: 300 });
    }

    #[test]
    fn flags_are_strict_and_name_the_variable() {
        let (s, problems) = read(&[("FN_UI_ENABLED", "YES"), ("FN_CONSOLE_LOCAL_ONLY", "off"), ("FN_CONSOLE_WRITE_ENABLED", "maybe")]);
        assert!(s.ui_enabled && !s.local_only);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("FN_CONSOLE_WRITE_ENABLED") && problems[0].contains("maybe"));
    }

    #[test]
    fn short_tokens_are_refused_without_echoing_them() {
        let (s, problems) = read(&[("FN_ADMIN_TOKEN", "short-secret")]);
        assert!(s.token.is_none());
        assert!(problems[0].contains("12 characters") && problems[0].contains("at least 24"), "{problems:?}");
        assert!(!problems[0].contains("short-secret"));
    }

    #[test]
    fn the_token_becomes_a_mac_and_never_appears() {
        let token = "0123456789abcdef0123456789abcdef";
        let (s, problems) = read(&[("FN_ADMIN_TOKEN", token)]);
        assert!(problems.is_empty());
        let check = s.token.expect("token configured");
        assert_eq!(check.key_hex.len(), 64);
        assert_eq!(check.mac_hex.len(), 40);
        let json = serde_json::to_string(&token_check(token, b"k")).expect("json");
        assert!(!json.contains(token));
        assert!(!format!("{check:?}").contains(&check.mac_hex));
    }

    #[test]
    fn hmac_matches_a_known_vector() {
        // RFC 2202 test case 2.
        assert_eq!(hex(&hmac_sha1(b"Jefe", b"what do ya want for nothing?")), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn cidrs_and_hosts_are_validated() {
        let (s, problems) = read(&[
            ("FN_CONSOLE_TRUSTED_CIDRS", "10.0.0.0/8, 192.168.1.7 ,fd00::/8"),
            ("FN_TRUSTED_PROXY_CIDRS", "10.0.0.0/33,nope"),
            ("FN_CONSOLE_ALLOWED_HOSTS", "API.example.com,bad host,[::1],api.example.com:443"),
        ]);
        assert_eq!(s.trusted_cidrs, vec!["10.0.0.0/8", "192.168.1.7/32", "fd00::/8"]);
        assert_eq!(s.allowed_hosts, vec!["api.example.com", "[::1]"]);
        assert_eq!(problems.len(), 4, "{problems:?}");
    }
}
