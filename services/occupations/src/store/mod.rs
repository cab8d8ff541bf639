//! The occupations store: the catalogue and the LMI figures received for it.

pub mod figures;
pub mod history;
pub mod migration;
pub mod occupations;
pub mod reference;
