//! The peer wire protocol (BEP 3, BEP 6, BEP 10) as a sans-IO codec. (Being written.)
