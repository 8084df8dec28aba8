//! `--format` and `--pretty`: ECS, OCSF and the readable line are transforms of the native
//! record, driven by its `kind` string and the field names of `shared/schema.md`, so every kind
//! (present or added later) maps without code in the kind's own module.
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{native::Native, Encoder};
use crate::clock::BootClock;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// tprobe's own schema (`shared/schema.md`).
    #[default]
    Native,
    /// Elastic Common Schema.
    Ecs,
    /// Open Cybersecurity Schema Framework.
    Ocsf,
}

/// The encoder for a format (`pretty`: one readable line per event, coloured when `color`).
pub fn build(
    format: Format,
    pretty: bool,
    color: bool,
    host: String,
    clock: BootClock,
) -> Box<dyn Encoder> {
    let native = Native::new(host, clock);
    if pretty {
        return Box::new(Transcode {
            native,
            render: Render::Pretty { color },
        });
    }
    match format {
        Format::Native => Box::new(native),
        Format::Ecs => Box::new(Transcode {
            native,
            render: Render::Json(super::ecs::from_native),
        }),
        Format::Ocsf => Box::new(Transcode {
            native,
            render: Render::Json(super::ocsf::from_native),
        }),
    }
}

enum Render {
    Json(fn(&Value) -> Value),
    Pretty { color: bool },
}

/// Encodes natively, then maps the record.
struct Transcode {
    native: Native,
    render: Render,
}

impl Encoder for Transcode {
    fn encode(&self, ev: &crate::event::Event, seq: u64, out: &mut Vec<u8>) {
        let mut line = Vec::with_capacity(1024);
        self.native.encode(ev, seq, &mut line);
        let Ok(v) = serde_json::from_slice::<Value>(&line) else {
            // Cannot happen for our own output; keep the event rather than lose it.
            out.extend_from_slice(&line);
            return;
        };
        match &self.render {
            Render::Json(f) => {
                let _ = serde_json::to_writer(&mut *out, &f(&v));
                out.push(b'\n');
            }
            Render::Pretty { color } => {
                out.extend_from_slice(super::pretty::line(&v, *color).as_bytes());
                out.push(b'\n');
            }
        }
    }
}
