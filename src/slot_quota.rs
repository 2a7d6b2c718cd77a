//! The global upload-slot budget shared among shards (issue 5). Being written.
