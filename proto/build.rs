//! Compiles every .proto under `careers/` with protox (pure Rust, no system protoc) and
//! writes the descriptor set beside the generated code for gRPC reflection.

use std::{
    env, fs, io,
    path::{Path, PathBuf},
};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let mut files = Vec::new();
    collect_protos(&root.join("careers"), &mut files)?;
    files.sort();
    println!("cargo:rerun-if-changed=careers");

    let fds = protox::compile(&files, [&root])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("careers_descriptor.bin"), fds.encode_to_vec())?;

    // The casenotes and ambassadors APIs are scalars, lists and messages only (no enums,
    // no oneofs), so their JSON over the gateway is the messages themselves: field names as
    // in the proto, absent fields defaulted, unknown ones refused.
    tonic_prost_build::configure()
        .message_attribute(
            ".careers.casenotes.v1",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default, deny_unknown_fields)]",
        )
        .message_attribute(
            ".careers.ambassadors.v1",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default, deny_unknown_fields)]",
        )
        .include_file("careers.rs")
        .emit_rerun_if_changed(false)
        .compile_fds(fds)?;
    Ok(())
}

fn collect_protos(dir: &Path, files: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            files.push(path);
        }
    }
    Ok(())
}
