//! Token-bucket rate limits, global and per torrent (issue 5). Being written.
