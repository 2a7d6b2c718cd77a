//! The swarm bench plot (issue 4). Being written.
