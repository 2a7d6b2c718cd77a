//! A small blocking HTTP/1.1 client for tracker announces. (Being written.)
