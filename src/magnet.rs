//! Magnet URIs (BEP 9, BEP 53). (Stub: lands with the magnet work.)
