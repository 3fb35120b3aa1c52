//! The settings file the Lua gateway loads in `init_by_lua` (`conf/gateway.json`): where the catalog and the
//! control socket are, the mode, and the guard's settings. nginx clears its workers' environment, so this file,
//! readable only by the gateway's group, is how settings reach Lua.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::guard::GuardSettings;
use crate::types::Mode;

#[derive(Debug, Clone, Serialize)]
pub struct GatewaySettings {
    pub mode: Mode,
    pub catalog_path: PathBuf,
    pub control_socket: PathBuf,
    pub cold_start_timeout_ms: u64,
    /// `{ "<function id>": { "KEY": "value" } }`: each function's env, for `event.env`. Never in the catalog.
    pub secrets_path: PathBuf,
    pub guard: GuardSettings,
}

impl GatewaySettings {
    /// Writes the file atomically, mode 0640, group-owned by the gateway when running as root.
    pub fn write(&self, path: &Path, gateway_gid: Option<u32>) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        crate::catalog::write_atomic(path, json.as_bytes(), 0o640)?;
        if gateway_gid.is_some() {
            crate::rundir::chown(path, None, gateway_gid)?;
        }
        Ok(())
    }
}
