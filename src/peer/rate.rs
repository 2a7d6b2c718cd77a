//! `RateMeter`: a transfer rate over a sliding window. (Being written.)
