//! Every socket the engine opens, through socket2. (Being written.)
