use anyhow::{anyhow, Context as _};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let ebpf_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow!("probe-user has no parent directory"))?
        .join("probe-ebpf");
    let root_dir = ebpf_dir.to_str().context("non-UTF-8 path to probe-ebpf")?;
    let package = Package {
        name: "probe-ebpf",
        root_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([package], Toolchain::default())
}
