//! The lmi store: its schema and repository functions.

pub mod figures;
pub mod known_occupations;
pub mod migration;
pub mod sscs;
pub mod staging;
pub mod submissions;
