//! Metainfo (stub).
