//! What the messages carry: English-like lines, generated from a fixed seed
//! so every run and every variant sends the same bytes.

/// Words drawn for the lines, the common ones first (drawn more often).
const WORDS: &str = "the of and to a in is it that was for on are with as they be at one have this from by \
     not but what all were when we there can an your which their said if will each about \
     how up out them then she many some so these would other into has more her two like him \
     see time could no make than first been its who now people my made over did down only \
     way find use may water long little very after words called just where most know get \
     through back much before go good new write our used me man day too any same right look \
     think also around another came come work three word must because does part even place \
     well such here take why things help put years different away again off went old number \
     great tell men say small every found still between name should home big give air line \
     set own under read last never us left end along while might next sound below saw \
     something thought both few those always looked show large often together asked house \
     world going want school important until form food keep children feet land side without \
     boy once animals life enough took sometimes four head above kind began almost live \
     page got earth need far hand high year mother light parts country father let night \
     following picture being study second eyes soon times story boys since white days ever \
     paper hard near sentence better best across during today others however sure means \
     knew try told young miles sun ways thing whole hear example heard several change \
     answer room sea against top turned learn point city play toward five using himself \
     usually";

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// An index below `n`, small ones more likely (the product of two
    /// uniform draws), as common words are in English.
    fn skewed(&mut self, n: usize) -> usize {
        let (a, b) = (self.next() % n as u64, self.next() % n as u64);
        (a * b / n as u64) as usize
    }
}

/// The text the messages are cut from: longer than the largest zstd window
/// used (2^21), so a message never repeats within an encoder's reach and
/// compresses as fresh text does.
#[derive(Debug)]
pub(crate) struct Corpus {
    text: Vec<u8>,
    /// Bytes messages may start within (the rest is room for the longest).
    span: usize,
}

impl Corpus {
    /// 4 MiB of sentences, and room for messages of up to `max_size`.
    pub(crate) fn new(max_size: usize) -> Self {
        let span = 4 << 20;
        let words: Vec<&[u8]> = WORDS.split_whitespace().map(str::as_bytes).collect();
        let mut rng = Rng(0x6a09_e667_f3bc_c908);
        let mut text = Vec::with_capacity(span + max_size + 128);
        while text.len() < span + max_size {
            let count = 6 + rng.next() % 12;
            for i in 0..count {
                let word = words[rng.skewed(words.len())];
                if i == 0 {
                    text.push(word[0].to_ascii_uppercase());
                    text.extend_from_slice(&word[1..]);
                } else {
                    text.push(b' ');
                    text.extend_from_slice(word);
                }
                if i + 1 < count && rng.next().is_multiple_of(9) {
                    text.push(b',');
                }
            }
            text.extend_from_slice(if rng.next().is_multiple_of(7) {
                b"?\n"
            } else {
                b".\n"
            });
        }
        Self { text, span }
    }

    /// Message `i` of `size` bytes: consecutive messages are consecutive
    /// runs of the text.
    pub(crate) fn message(&self, i: u64, size: usize) -> &[u8] {
        let start = (i as usize).wrapping_mul(size) % self.span;
        &self.text[start..start + size]
    }
}
