//! Integration tests: each one boots the real stack (the `fastfn` binary, real nginx with the Lua module, real
//! Python and Node workers) on a free loopback port and talks HTTP to it.

mod harness;

mod adversarial;

mod contract;
mod control_plane;
mod deps;
mod doctor;
mod function_config;
mod gateway;
mod hostile;
mod remote_peer;
mod runtimes;
mod secrets;
mod settings_file;
mod service;
mod skeleton;
mod status;
mod supervision;
