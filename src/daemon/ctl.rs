//! The local control socket (`STATE_DIR/control.sock`). STUB: written in
//! the ctl helper's branch.
