//! Is a baseline JPEG's image data all there?
//!
//! JPEG decoders (the `image` crate's, libjpeg's) fill image data that stops
//! early with grey and carry on: half a file with an end-of-image marker
//! appended, or a few kilobytes whose header claims 9000x9000 pixels, decode
//! into plausible pictures whose features are wrong. The entropy-coded data
//! says how many 8x8 blocks it holds, so this walks it: it decodes the
//! Huffman symbols of every block (no transform, no pixels) and checks the
//! data holds as many blocks as the frame header's size needs.
//!
//! Only baseline and extended sequential Huffman JPEGs (SOF0, SOF1), the kind
//! cameras and phones write, are walked; for others (progressive, arithmetic,
//! lossless) the answer is "cannot tell" and the decoder decides.

/// Codes this long or shorter are decoded with one table lookup.
const LOOKAHEAD: u32 = 9;

/// A Huffman table in the form of the JPEG standard's decoding procedure
/// (ITU T.81, F.2.2.3): for each code length, the largest code and where its
/// symbols start; plus a lookup of the codes of up to [`LOOKAHEAD`] bits (most
/// of them), so a symbol usually costs one lookup instead of a loop per bit.
#[derive(Clone)]
struct Huffman {
    max_code: [i32; 17],
    val_offset: [i32; 17],
    values: Vec<u8>,
    /// By the next [`LOOKAHEAD`] bits: `(length, symbol)` of the code they
    /// start with, length 0 when that code is longer.
    fast: Vec<(u8, u8)>,
}

impl Huffman {
    fn new(counts: &[u8; 16], values: Vec<u8>) -> Huffman {
        let mut max_code = [-1i32; 17];
        let mut val_offset = [0i32; 17];
        let mut fast = vec![(0u8, 0u8); 1 << LOOKAHEAD];
        let (mut code, mut k) = (0i32, 0i32);
        for len in 1..=16 {
            let n = i32::from(counts[len - 1]);
            if n > 0 {
                val_offset[len] = k - code;
                if len as u32 <= LOOKAHEAD {
                    let shift = LOOKAHEAD - len as u32;
                    for i in 0..n {
                        let (c, index) = ((code + i) as usize, (k + i) as usize);
                        // A corrupt table can name more codes than the length
                        // holds, or more symbols than it lists: those stay out.
                        let (Some(&symbol), true) = (values.get(index), c < 1 << len) else {
                            continue;
                        };
                        for slot in &mut fast[c << shift..(c + 1) << shift] {
                            *slot = (len as u8, symbol);
                        }
                    }
                }
                code += n;
                k += n;
                max_code[len] = code - 1;
            }
            code <<= 1;
        }
        Huffman {
            max_code,
            val_offset,
            values,
            fast,
        }
    }
}

/// Reads the entropy-coded bits: stuffed `FF 00` is a data byte, restart
/// markers are skipped, any other marker ends the data. Up to 64 bits are
/// buffered ahead; `n` counts those not yet consumed (the low bits of `acc`).
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    n: u32,
    ended: bool,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Bits<'a> {
        Bits {
            data,
            pos: 0,
            acc: 0,
            n: 0,
            ended: false,
        }
    }

    /// Buffers whole bytes until more than 56 bits are held or the data ends.
    fn fill(&mut self) {
        while self.n <= 56 && !self.ended {
            let Some(&byte) = self.data.get(self.pos) else {
                self.ended = true;
                return;
            };
            self.pos += 1;
            if byte != 0xFF {
                self.acc = (self.acc << 8) | u64::from(byte);
                self.n += 8;
                continue;
            }
            match self.data.get(self.pos) {
                Some(0x00) => {
                    self.pos += 1;
                    self.acc = (self.acc << 8) | 0xFF;
                    self.n += 8;
                }
                // RSTn: the next interval starts on a byte boundary.
                Some(0xD0..=0xD7) => {
                    self.pos += 1;
                }
                // Fill bytes before a marker.
                Some(0xFF) => {}
                _ => self.ended = true,
            }
        }
    }

    /// The next `count` (1 to 16) bits without consuming them, zeros past the
    /// end of the data; and how many of them are real.
    fn peek(&mut self, count: u32) -> (u32, u32) {
        if self.n < count {
            self.fill();
        }
        let value = if self.n >= count {
            (self.acc >> (self.n - count)) as u32
        } else {
            (self.acc << (count - self.n)) as u32
        };
        (value & ((1 << count) - 1), self.n.min(count))
    }

    fn bits(&mut self, count: u32) -> Option<()> {
        if self.n < count {
            self.fill();
        }
        if self.n < count {
            return None;
        }
        self.n -= count;
        Some(())
    }

    fn symbol(&mut self, table: &Huffman) -> Option<u8> {
        let (ahead, real) = self.peek(LOOKAHEAD);
        let (len, symbol) = table.fast[ahead as usize];
        if len > 0 {
            if u32::from(len) > real {
                return None; // the data ends inside the code
            }
            self.n -= u32::from(len);
            return Some(symbol);
        }
        for len in LOOKAHEAD + 1..=16 {
            let (code, real) = self.peek(len);
            if real < len {
                return None;
            }
            if code as i32 <= table.max_code[len as usize] {
                self.n -= len;
                let index = (code as i32 + table.val_offset[len as usize]) as usize;
                return table.values.get(index).copied();
            }
        }
        None
    }

    /// Drops the bits left in the current byte (at a restart marker).
    fn align(&mut self) {
        self.n -= self.n % 8;
    }
}

struct Component {
    id: u8,
    h: usize,
    v: usize,
}

/// Whether the JPEG's baseline scans hold every block the frame needs:
/// `Some(true)` yes, `Some(false)` the data stops early, `None` when this
/// cannot tell (not a baseline Huffman JPEG, or headers it does not follow).
pub fn scans_are_complete(bytes: &[u8]) -> Option<bool> {
    if bytes.get(..2) != Some(&[0xFF, 0xD8]) {
        return None;
    }
    let mut pos = 2;
    let mut dc: [Option<Huffman>; 4] = [None, None, None, None];
    let mut ac: [Option<Huffman>; 4] = [None, None, None, None];
    let mut frame: Option<(usize, usize, Vec<Component>)> = None;
    let mut restart_interval = 0usize;
    // Blocks each component needs over all scans, and blocks seen.
    let mut needed: Vec<usize> = Vec::new();
    let mut seen: Vec<usize> = Vec::new();
    loop {
        // Find the next marker (skipping fill bytes).
        while bytes.get(pos) == Some(&0xFF) && bytes.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        if bytes.get(pos) != Some(&0xFF) {
            return None;
        }
        let marker = *bytes.get(pos + 1)?;
        pos += 2;
        if marker == 0xD9 {
            break; // EOI
        }
        if (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            continue;
        }
        let len = usize::from(u16::from_be_bytes([*bytes.get(pos)?, *bytes.get(pos + 1)?]));
        let segment = bytes.get(pos + 2..pos + len)?;
        pos += len;
        match marker {
            // SOF0 and SOF1: baseline and extended sequential, Huffman coded.
            0xC0 | 0xC1 => {
                let height = usize::from(u16::from_be_bytes([*segment.get(1)?, *segment.get(2)?]));
                let width = usize::from(u16::from_be_bytes([*segment.get(3)?, *segment.get(4)?]));
                let count = usize::from(*segment.get(5)?);
                let mut comps = Vec::with_capacity(count);
                for c in 0..count {
                    let at = 6 + 3 * c;
                    let sampling = *segment.get(at + 1)?;
                    comps.push(Component {
                        id: *segment.get(at)?,
                        h: usize::from(sampling >> 4).max(1),
                        v: usize::from(sampling & 15).max(1),
                    });
                }
                if width == 0 || height == 0 || comps.is_empty() {
                    return None;
                }
                let (hmax, vmax) = (
                    comps.iter().map(|c| c.h).max()?,
                    comps.iter().map(|c| c.v).max()?,
                );
                needed = comps
                    .iter()
                    .map(|c| {
                        let cw = (width * c.h).div_ceil(hmax);
                        let ch = (height * c.v).div_ceil(vmax);
                        cw.div_ceil(8) * ch.div_ceil(8)
                    })
                    .collect();
                seen = vec![0; comps.len()];
                frame = Some((width, height, comps));
            }
            // Other frame types: progressive, lossless, arithmetic: not walked.
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return None,
            0xC4 => {
                let mut at = 0;
                while at < segment.len() {
                    let class_id = *segment.get(at)?;
                    let counts: [u8; 16] = segment.get(at + 1..at + 17)?.try_into().ok()?;
                    let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
                    let values = segment.get(at + 17..at + 17 + total)?.to_vec();
                    let table = Huffman::new(&counts, values);
                    let slot = usize::from(class_id & 3);
                    if class_id >> 4 == 0 {
                        dc[slot] = Some(table);
                    } else {
                        ac[slot] = Some(table);
                    }
                    at += 17 + total;
                }
            }
            0xDD => {
                restart_interval =
                    usize::from(u16::from_be_bytes([*segment.first()?, *segment.get(1)?]));
            }
            0xDA => {
                let (width, height, comps) = frame.as_ref()?;
                let count = usize::from(*segment.first()?);
                let mut scan = Vec::with_capacity(count);
                for c in 0..count {
                    let id = *segment.get(1 + 2 * c)?;
                    let tables = *segment.get(2 + 2 * c)?;
                    let index = comps.iter().position(|k| k.id == id)?;
                    // A selector is 4 bits wide and only 0..=3 name a table:
                    // anything else is a header this cannot follow.
                    let dc = dc.get(usize::from(tables >> 4))?.clone()?;
                    let ac = ac.get(usize::from(tables & 15))?.clone()?;
                    scan.push((index, dc, ac));
                }
                let (hmax, vmax) = (
                    comps.iter().map(|c| c.h).max()?,
                    comps.iter().map(|c| c.v).max()?,
                );
                // Blocks per MCU and MCUs in this scan.
                let (mcus, per_mcu): (usize, Vec<(usize, usize)>) = if scan.len() == 1 {
                    let (index, ..) = scan[0];
                    (needed[index], vec![(0, 1)])
                } else {
                    let mcus = width.div_ceil(8 * hmax) * height.div_ceil(8 * vmax);
                    let per = scan
                        .iter()
                        .enumerate()
                        .map(|(i, (index, ..))| (i, comps[*index].h * comps[*index].v))
                        .collect();
                    (mcus, per)
                };
                let mut bits = Bits::new(bytes.get(pos..)?);
                for mcu in 0..mcus {
                    if restart_interval > 0 && mcu > 0 && mcu % restart_interval == 0 {
                        bits.align();
                    }
                    for &(slot, blocks) in &per_mcu {
                        let (index, dc, ac) = &scan[slot];
                        for _ in 0..blocks {
                            if decode_block(&mut bits, dc, ac).is_none() {
                                return Some(false);
                            }
                            seen[*index] += 1;
                        }
                    }
                }
                // Continue after this scan's data, at its ending marker.
                let mut end = pos;
                loop {
                    match (bytes.get(end), bytes.get(end + 1)) {
                        (Some(0xFF), Some(0x00 | 0xD0..=0xD7)) => end += 2,
                        // Fill bytes: the marker starts at the last 0xFF.
                        (Some(0xFF), Some(0xFF)) => end += 1,
                        (Some(0xFF), Some(_)) => break,
                        (Some(_), _) => end += 1,
                        (None, _) => return Some(false),
                    }
                }
                pos = end;
            }
            _ => {}
        }
    }
    frame.as_ref()?;
    Some(seen.iter().zip(&needed).all(|(s, n)| s >= n))
}

/// Decodes one block's symbols (DC category and bits, then AC run/size pairs
/// up to end-of-block); `None` when the data ends first.
fn decode_block(bits: &mut Bits<'_>, dc: &Huffman, ac: &Huffman) -> Option<()> {
    let category = bits.symbol(dc)?;
    bits.bits(u32::from(category))?;
    let mut k = 1;
    while k < 64 {
        let rs = bits.symbol(ac)?;
        let (run, size) = (rs >> 4, rs & 15);
        if size == 0 {
            if run != 15 {
                break; // end of block
            }
            k += 16;
            continue;
        }
        k += usize::from(run) + 1;
        bits.bits(u32::from(size))?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Small synthetic JPEGs made by Pillow (tests/data/make_jpegs.py): 61x37,
    /// so the edge blocks and MCUs are partial.
    const BASELINE: [(&str, &[u8]); 4] = [
        (
            "baseline-420.jpg",
            include_bytes!("../tests/data/baseline-420.jpg"),
        ),
        (
            "baseline-444-restarts.jpg",
            include_bytes!("../tests/data/baseline-444-restarts.jpg"),
        ),
        (
            "baseline-420-restart-rows.jpg",
            include_bytes!("../tests/data/baseline-420-restart-rows.jpg"),
        ),
        ("grey.jpg", include_bytes!("../tests/data/grey.jpg")),
    ];
    const PROGRESSIVE: &[u8] = include_bytes!("../tests/data/progressive.jpg");

    fn has_marker(bytes: &[u8], marker: u8) -> bool {
        bytes.windows(2).any(|w| w == [0xFF, marker])
    }

    /// Where the first scan's entropy-coded data starts.
    fn scan_data_start(bytes: &[u8]) -> usize {
        let sos = bytes
            .windows(2)
            .position(|w| w == [0xFF, 0xDA])
            .expect("a scan");
        sos + 2 + usize::from(u16::from_be_bytes([bytes[sos + 2], bytes[sos + 3]]))
    }

    #[test]
    fn whole_baseline_files_are_complete() {
        for (name, bytes) in BASELINE {
            assert_eq!(scans_are_complete(bytes), Some(true), "{name}");
        }
    }

    #[test]
    fn restart_intervals_are_followed() {
        // The fixtures hold what their names say: a DRI segment and RSTn markers.
        for (name, bytes) in &BASELINE[1..3] {
            assert!(has_marker(bytes, 0xDD), "{name} has no restart interval");
            assert!(
                (0xD0..=0xD7).any(|m| has_marker(bytes, m)),
                "{name} has no restart marker"
            );
            assert_eq!(scans_are_complete(bytes), Some(true), "{name}");
        }
    }

    #[test]
    fn progressive_files_are_left_to_the_decoder() {
        assert!(has_marker(PROGRESSIVE, 0xC2));
        assert_eq!(scans_are_complete(PROGRESSIVE), None);
    }

    #[test]
    fn a_file_cut_at_any_byte_is_never_complete() {
        for (name, bytes) in BASELINE {
            let data = scan_data_start(bytes);
            // Every cut before the end-of-image marker, alone and with an
            // end-of-image marker appended (a truncated upload "repaired").
            for len in 0..bytes.len() - 2 {
                let cut = &bytes[..len];
                let mut closed = cut.to_vec();
                closed.extend_from_slice(&[0xFF, 0xD9]);
                for (how, candidate) in [("cut", cut), ("cut + EOI", &closed[..])] {
                    let answer = scans_are_complete(candidate);
                    assert_ne!(answer, Some(true), "{name} {how} at {len}");
                    if len > data {
                        // Inside the image data: known to stop early.
                        assert_eq!(answer, Some(false), "{name} {how} at {len}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_scan_naming_a_table_that_cannot_exist_is_not_followed() {
        // Found by the property test below: a table selector of 15 in the
        // scan header indexed past the four table slots (a panic).
        let (_, bytes) = BASELINE[0];
        let sos = bytes
            .windows(2)
            .position(|w| w == [0xFF, 0xDA])
            .expect("SOS");
        for selector in [0xF0, 0x0F, 0x44] {
            let mut bad = bytes.to_vec();
            bad[sos + 6] = selector; // the first component's DC/AC selectors
            assert_eq!(scans_are_complete(&bad), None, "selector {selector:#04x}");
        }
    }

    #[test]
    fn a_header_claiming_more_blocks_than_the_data_holds_is_caught() {
        // The 9000x9000 trick: the same scan data under a frame header
        // claiming a larger picture.
        let (_, bytes) = BASELINE[0];
        let sof = bytes
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("SOF0");
        let mut big = bytes.to_vec();
        big[sof + 5..sof + 9].copy_from_slice(&[0x23, 0x28, 0x23, 0x28]);
        assert_eq!(scans_are_complete(&big), Some(false));
    }

    proptest! {
        // Bounded: a few hundred cases each, well under a second in CI.
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn any_bytes_after_a_start_marker_are_answered_without_panicking(
            tail in prop::collection::vec(any::<u8>(), 0..2048)
        ) {
            let mut bytes = vec![0xFF, 0xD8];
            bytes.extend(tail);
            let _ = scans_are_complete(&bytes);
        }

        #[test]
        fn changed_bytes_of_a_real_file_are_answered_without_panicking(
            file in 0..BASELINE.len(),
            changes in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = BASELINE[file].1.to_vec();
            for (at, value) in changes {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            let len = cut.index(bytes.len() + 1);
            let _ = scans_are_complete(&bytes[..len]);
        }

        #[test]
        fn a_cut_inside_the_image_data_is_always_caught(
            file in 0..BASELINE.len(),
            at in any::<prop::sample::Index>(),
        ) {
            let bytes = BASELINE[file].1;
            let data = scan_data_start(bytes);
            let len = data + 1 + at.index(bytes.len() - 2 - data - 1);
            prop_assert_eq!(scans_are_complete(&bytes[..len]), Some(false));
        }
    }
}
