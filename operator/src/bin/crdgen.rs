//! Prints the EnergyPlatform CustomResourceDefinition as YAML.
//!
//! `cargo run -p operator --bin crdgen > crds/energyplatforms.energy.platform.dev.yaml`; the test
//! suite fails when the committed file differs from this output.

fn main() -> anyhow::Result<()> {
    print!("{}", operator::resource::crd_yaml()?);
    Ok(())
}
