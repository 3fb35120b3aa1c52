// The Lua gateway, worker programs and nginx template are embedded with include_dir!/include_str!; make cargo
// rebuild when any of them changes (a directory here means "anything inside it").
fn main() {
    for dir in ["lua", "runtimes", "nginx-templates"] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
