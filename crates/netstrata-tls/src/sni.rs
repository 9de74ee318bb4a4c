//! The server name a client asks for, read from its ClientHello.
//!
//! rustls' unbuffered server connection does not expose the SNI it
//! received, so the layer reads it from the ClientHello record before
//! rustls processes it (the record is plaintext and left untouched until
//! then). rustls still validates the hello: a name read here is reported
//! only for a connection whose handshake goes on.

use rustls::pki_types::DnsName;

/// What the start of the input says about the client's server name.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sniffed {
    /// The first record is not complete yet.
    Incomplete,
    /// The first record was read: the name, if it holds a valid one.
    Done(Option<String>),
}

const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const SERVER_NAME: u16 = 0;
const HOST_NAME: u8 = 0;

/// Reads the SNI from a ClientHello in the first record of `input`. A
/// hello spread over several records (rare: it takes more than 16 KiB)
/// yields no name.
pub(crate) fn sniff(input: &[u8]) -> Sniffed {
    match input.first() {
        None => return Sniffed::Incomplete,
        Some(&typ) if typ != HANDSHAKE => return Sniffed::Done(None),
        Some(_) => {}
    }
    let Some(header) = input.get(..5) else {
        return Sniffed::Incomplete;
    };
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let Some(record) = input.get(5..5 + len) else {
        return Sniffed::Incomplete;
    };
    Sniffed::Done(host_name(&mut Reader(record)).and_then(|name| {
        let name = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
        DnsName::try_from(name.as_str()).ok()?;
        Some(name)
    }))
}

fn host_name<'a>(r: &mut Reader<'a>) -> Option<&'a [u8]> {
    if r.u8()? != CLIENT_HELLO {
        return None;
    }
    let mut hello = Reader(r.vec(3)?);
    hello.take(2 + 32)?; // legacy_version, random
    hello.vec(1)?; // legacy_session_id
    hello.vec(2)?; // cipher_suites
    hello.vec(1)?; // legacy_compression_methods
    let mut extensions = Reader(hello.vec(2)?);
    while !extensions.0.is_empty() {
        let typ = extensions.u16()?;
        let body = extensions.vec(2)?;
        if typ != SERVER_NAME {
            continue;
        }
        let mut list = Reader(Reader(body).vec(2)?);
        while !list.0.is_empty() {
            let kind = list.u8()?;
            let name = list.vec(2)?;
            if kind == HOST_NAME {
                return Some(name);
            }
        }
        return None;
    }
    None
}

/// A cursor over bytes of the network: every read is checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a big-endian length prefix of `width` bytes.
    fn vec(&mut self, width: usize) -> Option<&'a [u8]> {
        let len = self
            .take(width)?
            .iter()
            .fold(0usize, |n, b| n << 8 | usize::from(*b));
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(name: &[u8]) -> Vec<u8> {
        let mut sni = vec![HOST_NAME];
        sni.extend((name.len() as u16).to_be_bytes());
        sni.extend(name);
        let mut list = (sni.len() as u16).to_be_bytes().to_vec();
        list.extend(sni);
        let mut ext = vec![0xff, 0x01, 0, 1, 0]; // another extension first
        ext.extend(SERVER_NAME.to_be_bytes());
        ext.extend((list.len() as u16).to_be_bytes());
        ext.extend(list);
        let mut body = vec![3, 3];
        body.extend([7; 32]);
        body.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
        body.extend((ext.len() as u16).to_be_bytes());
        body.extend(ext);
        let mut hs = vec![CLIENT_HELLO, 0];
        hs.extend((body.len() as u16).to_be_bytes());
        hs.extend(body);
        let mut record = vec![HANDSHAKE, 3, 1];
        record.extend((hs.len() as u16).to_be_bytes());
        record.extend(hs);
        record
    }

    #[test]
    fn the_host_name_is_read_once_the_record_is_complete() {
        let record = hello(b"Example.COM");
        for cut in 0..record.len() {
            assert_eq!(sniff(&record[..cut]), Sniffed::Incomplete, "{cut}");
        }
        assert_eq!(sniff(&record), Sniffed::Done(Some("example.com".into())));
    }

    #[test]
    fn no_name_from_garbage_or_an_invalid_name() {
        assert_eq!(sniff(b"GET / HTTP/1.1\r\n"), Sniffed::Done(None));
        assert_eq!(sniff(&hello(b"bad name!")), Sniffed::Done(None));
        let mut cut = hello(b"example.com");
        cut.truncate(cut.len() - 3);
        let len = (cut.len() - 5) as u16;
        cut[3..5].copy_from_slice(&len.to_be_bytes());
        assert_eq!(sniff(&cut), Sniffed::Done(None));
    }
}
