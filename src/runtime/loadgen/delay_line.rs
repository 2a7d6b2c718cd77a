//! A userspace delay line between two TUN devices (issue 4). Being written.
