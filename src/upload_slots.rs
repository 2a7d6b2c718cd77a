//! Upload slots, first version: which interested peers of one torrent we
//! unchoke. (Being written; see issue 3, point 6.)
