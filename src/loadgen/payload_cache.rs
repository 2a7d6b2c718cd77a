//! A cache of generated payload blocks for the trivial seeder (issue 4). Being written.
