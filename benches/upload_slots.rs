//! Being written (issue 4/5).

fn main() {}
