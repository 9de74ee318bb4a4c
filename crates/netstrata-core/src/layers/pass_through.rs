use crate::Result;
use crate::layer::{Inbound, Layer, Outbound};
use crate::layers::{End, Ends};
use crate::stack::transfer;

/// Forwards bytes unchanged in both directions.
///
/// Its byte counters (kept, like every layer's, by the stack around it) show
/// what crossed its position in the stack; it also is the smallest complete
/// example of the contract: it honours the upward room, ends its read side
/// when its input ends, and refuses writes after shutdown. Outbound, when
/// everything it gave before has been taken, it moves all its input at once
/// (a buffer swap), the downward room being soft.
#[derive(Debug, Clone, Default)]
pub struct PassThrough {
    name: Option<&'static str>,
    ends: Ends,
}

impl PassThrough {
    /// A pass-through layer named `"pass-through"`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A pass-through layer with its own name in statistics ("after-tls").
    pub fn named(name: &'static str) -> Self {
        Self {
            name: Some(name),
            ends: Ends::default(),
        }
    }
}

impl Layer for PassThrough {
    fn name(&self) -> &'static str {
        self.name.unwrap_or("pass-through")
    }

    fn handle_inbound(&mut self, io: Inbound<'_>) -> Result<()> {
        self.ends.before_inbound()?;
        if self.ends.read == End::Open {
            transfer(io.input, io.upper, io.upper_room);
        }
        self.ends.after_inbound(io.input_ended, io.input.is_empty());
        Ok(())
    }

    fn handle_outbound(&mut self, io: Outbound<'_>) -> Result<()> {
        self.ends
            .before_outbound(self.name(), io.input.is_empty())?;
        if io.lower.is_empty() {
            // Moving all of it is a buffer swap: no copy, no memory added.
            // The room is soft; keeping to it here would split one batch
            // into a full write and a remainder (two system calls and two
            // segments where one does).
            std::mem::swap(io.input, io.lower);
        } else {
            transfer(io.input, io.lower, io.lower_room);
        }
        self.ends.after_outbound(io.flush, io.input.is_empty());
        Ok(())
    }

    fn wants_read(&self) -> bool {
        self.ends.wants_read()
    }

    fn is_read_closed(&self) -> bool {
        self.ends.read == End::Closed
    }

    fn is_write_closed(&self) -> bool {
        self.ends.write == End::Closed
    }

    fn passes_bytes_through(&self) -> bool {
        self.ends.write == End::Open && !self.ends.failed.has_failed()
    }
}
