//! What each io_uring completion is about, in the 64 bits of user data the
//! kernel hands back with it.

/// What a completion is about: the kind of operation and the object (a
/// listener's index, a connection's token and generation, a send's slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// The loop's epoll descriptor became readable.
    Epoll,
    /// Listener `index` accepted a connection, or failed.
    Accept { index: u32 },
    /// Connection `token` (of `generation`'s low 24 bits) received bytes,
    /// reached the end, or failed.
    Recv { token: u32, generation: u32 },
    /// The send in `slot` completed.
    Send { slot: u32 },
    /// A cancellation's own completion.
    Cancel,
}

impl Op {
    const KIND: u64 = 56;

    pub(super) fn encode(self) -> u64 {
        match self {
            Self::Epoll => 0,
            Self::Accept { index } => (1 << Self::KIND) | u64::from(index),
            Self::Recv { token, generation } => {
                (2 << Self::KIND) | (u64::from(generation & 0xff_ffff) << 32) | u64::from(token)
            }
            Self::Send { slot } => (3 << Self::KIND) | u64::from(slot),
            Self::Cancel => 4 << Self::KIND,
        }
    }

    pub(super) fn decode(data: u64) -> Self {
        let low = (data & 0xffff_ffff) as u32;
        match data >> Self::KIND {
            0 => Self::Epoll,
            1 => Self::Accept { index: low },
            2 => Self::Recv {
                token: low,
                generation: ((data >> 32) & 0xff_ffff) as u32,
            },
            3 => Self::Send { slot: low },
            _ => Self::Cancel,
        }
    }

    /// A connection's receive, for its token and generation.
    pub(crate) fn recv(token: usize, generation: u64) -> Self {
        Self::Recv {
            token: token as u32,
            generation: (generation & 0xff_ffff) as u32,
        }
    }
}

/// One completion, with the bytes it received already taken from the
/// buffer (see `Ring::complete`).
#[derive(Debug)]
pub(crate) struct Completion {
    pub(crate) op: Op,
    /// The result: bytes, a descriptor, or a negated errno.
    pub(crate) result: i32,
    /// A multishot operation goes on (`IORING_CQE_F_MORE`).
    pub(crate) more: bool,
    /// The connection an accept completion gave (its descriptor, owned).
    pub(crate) stream: Option<std::net::TcpStream>,
}

/// What a completed send means for its connection.
#[derive(Debug)]
pub(crate) enum Sent {
    /// All bytes went: the buffer, for the next send.
    Done { owner: Op },
    /// The kernel took part; the rest was submitted again.
    Partly { owner: Op },
    /// The connection had closed: nothing more is sent.
    Orphaned,
    /// It failed (`errno`): the connection ends.
    Failed { owner: Op, errno: i32 },
}

#[cfg(test)]
mod tests {
    use super::Op;

    #[test]
    fn ops_survive_the_user_data() {
        let ops = [
            Op::Epoll,
            Op::Accept { index: 7 },
            Op::recv(123_456, (1 << 40) + 99),
            Op::Send { slot: 4_000_000 },
            Op::Cancel,
        ];
        for op in ops {
            assert_eq!(Op::decode(op.encode()), op);
        }
        // Generations are compared by their low 24 bits.
        assert_eq!(Op::recv(1, 5), Op::recv(1, (1 << 24) + 5));
    }
}
