//! The generated protobuf and gRPC code for every careers API and event.
//!
//! - `careers::<service>::v1`: the service's gRPC API (client and server).
//! - `careers::<service>::events::v1`: the events that service publishes.
//! - [`period`]: the template's periods and their order.
//! - [`soc`]: the shape of a SOC 2020 unit group code.
//! - [`time`]: instants between `Timestamp` and chrono.
//!
//! Sources live in `proto/careers/`; nothing generated is committed.

#[allow(
    missing_docs,
    missing_debug_implementations,
    unused_qualifications,
    clippy::all,
    clippy::pedantic
)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/careers.rs"));
}

pub use generated::careers;

pub mod period;
pub mod soc;
pub mod time;

/// The encoded descriptor set of every careers proto, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/careers_descriptor.bin"));

/// Full gRPC service names, as health checks and reflection know them.
pub mod service_names {
    pub const OCCUPATIONS: &str = "careers.occupations.v1.OccupationsService";
    pub const LMI: &str = "careers.lmi.v1.LmiService";
    pub const CASENOTES: &str = "careers.casenotes.v1.CasenotesService";
    pub const AMBASSADORS: &str = "careers.ambassadors.v1.AmbassadorsService";
}
