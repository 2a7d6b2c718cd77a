//! `ringseed info MAGNET`: what a magnet URI holds (waits for the magnet parser
//! to land on main).

use anyhow::{bail, Result};

pub fn run(uri: &str, _json: bool) -> Result<()> {
    bail!("cannot read magnet URI {uri:?}: magnet support is not built in yet")
}
