//! keymotherd as a library: settings, the dispensing adapter on the vault, the serial adapter and the runtime that ties them.
//!
//! The protocol itself lives in `keymother-protocol` and knows nothing of ports, clocks or
//! SQLite; this crate is the set of adapters around it.

mod background;
pub mod bench;
pub mod clock;
pub mod config;
pub mod control;
pub mod dispenser;
pub mod events;
mod integrity;
pub mod operator;
pub mod runtime;
pub mod screen;
pub mod serial;
pub mod state;
pub mod trust;
pub mod view;

pub use bench::{BenchBackends, BenchView, DisplaySink};
pub use config::{ConfigError, PortSettings, Settings};
pub use dispenser::{Dispenser, OpenError, Readiness};
pub use events::{ApplianceState, DaemonEvent, InjectionStep, Reason};
pub use runtime::{run, run_with};
pub use state::Stats;
