//! HTTP trackers (BEP 3, compact peers BEP 23, IPv6 peers BEP 7, scrape BEP 48),
//! sans-IO: this builds the URL to GET and reads the body that came back; the
//! HTTP client itself lives in `runtime`.
//!
//! The caller should read at most [`BODY_BYTES_MAX`] bytes of body; longer
//! bodies are refused here anyway.

mod response;
mod scrape;
mod url;

pub use response::{parse_announce_response, BODY_BYTES_MAX};
pub use scrape::{parse_scrape_response, ScrapeResponse, SCRAPE_FILES_MAX};
pub use url::{
    announce_url, percent_encode, scrape_request_url, scrape_url, SCRAPE_URL_HASHES_MAX,
    URL_BYTES_MAX,
};
