//! Tracker protocols (HTTP BEP 3/23, UDP BEP 15) as sans-IO codecs. (Being written.)
