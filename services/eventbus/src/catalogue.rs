//! Every event the services exchange, with its fixed subject and type (CONTRACT.md), and
//! every stream. Names live here once; nothing else spells a subject.

use careers_proto::careers::{ambassadors, casenotes, lmi, occupations};

/// A stream owned by one producing service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamName {
    /// `CAREERS_<SERVICE>`.
    pub name: &'static str,
    /// `careers.<service>.v1.>`.
    pub subjects: &'static str,
    /// `careers/<service>`, the CloudEvents source.
    pub source: &'static str,
}

pub const OCCUPATIONS: StreamName = StreamName {
    name: "CAREERS_OCCUPATIONS",
    subjects: "careers.occupations.v1.>",
    source: "careers/occupations",
};
pub const LMI: StreamName = StreamName {
    name: "CAREERS_LMI",
    subjects: "careers.lmi.v1.>",
    source: "careers/lmi",
};
pub const CASENOTES: StreamName = StreamName {
    name: "CAREERS_CASENOTES",
    subjects: "careers.casenotes.v1.>",
    source: "careers/casenotes",
};
pub const AMBASSADORS: StreamName = StreamName {
    name: "CAREERS_AMBASSADORS",
    subjects: "careers.ambassadors.v1.>",
    source: "careers/ambassadors",
};
/// Poison messages, one subject per durable consumer.
pub const DEAD_LETTERS: StreamName = StreamName {
    name: "CAREERS_DEADLETTER",
    subjects: "careers.deadletter.>",
    source: "careers/eventbus",
};

/// The dead-letter subject of a durable consumer.
pub fn dead_letter_subject(durable: &str) -> String {
    format!("careers.deadletter.{durable}")
}

/// A protobuf message published as an event.
pub trait Event: prost::Message + Default + Send + Sync + 'static {
    /// `careers.<service>.v1.<event_snake>`.
    const SUBJECT: &'static str;
    /// The proto full name, sent as `ce-type`.
    const TYPE: &'static str;
    /// The producing service's stream.
    const STREAM: StreamName;
}

macro_rules! events {
    ($($ty:ty => $stream:expr, $subject:literal, $type:literal;)*) => {
        $(impl Event for $ty {
            const SUBJECT: &'static str = $subject;
            const TYPE: &'static str = $type;
            const STREAM: StreamName = $stream;
        })*
    };
}

events! {
    occupations::events::v1::OccupationUpserted => OCCUPATIONS,
        "careers.occupations.v1.occupation_upserted", "careers.occupations.events.v1.OccupationUpserted";
    lmi::events::v1::FiguresPublished => LMI,
        "careers.lmi.v1.figures_published", "careers.lmi.events.v1.FiguresPublished";
    casenotes::events::v1::NoteRecorded => CASENOTES,
        "careers.casenotes.v1.note_recorded", "careers.casenotes.events.v1.NoteRecorded";
    casenotes::events::v1::ReferralRequested => CASENOTES,
        "careers.casenotes.v1.referral_requested", "careers.casenotes.events.v1.ReferralRequested";
    casenotes::events::v1::ClientErased => CASENOTES,
        "careers.casenotes.v1.client_erased", "careers.casenotes.events.v1.ClientErased";
    ambassadors::events::v1::MatchProposed => AMBASSADORS,
        "careers.ambassadors.v1.match_proposed", "careers.ambassadors.events.v1.MatchProposed";
    ambassadors::events::v1::EngagementConfirmed => AMBASSADORS,
        "careers.ambassadors.v1.engagement_confirmed", "careers.ambassadors.events.v1.EngagementConfirmed";
    ambassadors::events::v1::EngagementCompleted => AMBASSADORS,
        "careers.ambassadors.v1.engagement_completed", "careers.ambassadors.events.v1.EngagementCompleted";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subject_falls_under_its_stream() {
        fn check<E: Event>() {
            let prefix = E::STREAM.subjects.trim_end_matches('>');
            assert!(E::SUBJECT.starts_with(prefix), "{}", E::SUBJECT);
            assert!(E::TYPE.starts_with("careers."), "{}", E::TYPE);
        }
        check::<occupations::events::v1::OccupationUpserted>();
        check::<lmi::events::v1::FiguresPublished>();
        check::<casenotes::events::v1::NoteRecorded>();
        check::<casenotes::events::v1::ReferralRequested>();
        check::<casenotes::events::v1::ClientErased>();
        check::<ambassadors::events::v1::MatchProposed>();
        check::<ambassadors::events::v1::EngagementConfirmed>();
        check::<ambassadors::events::v1::EngagementCompleted>();
    }
}
