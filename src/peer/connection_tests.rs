use super::*;
use crate::InfoHash;
