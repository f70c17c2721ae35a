//! The embedded SQLite backend. (skeleton: owned by the store helper)
