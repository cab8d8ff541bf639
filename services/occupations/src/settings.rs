//! occupations' settings beyond the platform's sections: only the event bus's.

/// Settings of the occupations service beyond the platform's sections.
pub type OccupationsSettings = careers_eventbus::settings::EventSettings;
