//! Attacker tooling for the tamper tests: rewrites a category's segments
//! from a given one on, re-encrypting every record with its segment's data
//! key and re-chaining them and every later segment, exactly as someone
//! holding the encryption keys but not the checkpoint signing key could.
//! Not used by the archive itself; exposed (hidden) so integration tests and
//! the fuzz corpus generator can build forged archives.

use secmon_core::Event;

use crate::archive::{SEG_DIR, read_meta, seg_path};
use crate::codec::{self, NonceCounter};
use crate::crypto::Keys;
use crate::error::{Error, Result, corrupt, io_err};
use crate::format::{self, Frames, Next, SegmentHeader};
use crate::keys::KeyStore;
use crate::storage::Storage;

/// Rewrites `category` from its `from`-th segment on, applying `edit` to
/// each decrypted event (return `false` to drop the record), renumbering and
/// re-chaining. Personal fields stay as sealed bytes are re-sealed in clear:
/// the forger does not need subject keys for the tests.
pub fn rechain(
    st: &dyn Storage,
    keys: &Keys,
    category: &str,
    from: usize,
    edit: &mut dyn FnMut(u64, &mut Event) -> bool,
) -> Result<()> {
    let (id, _) = read_meta(st)?.ok_or_else(|| Error::Invalid("no archive".into()))?;
    let (mut ks, _) = KeyStore::load(st, id, keys.clone())?;
    let dir = format!("{SEG_DIR}/{category}");
    let segs = st.list(&dir).map_err(io_err(&dir))?;
    let mut state: Option<(u64, [u8; 32])> = None;
    let mut nonces = NonceCounter::new([7; 12]);
    for name in segs.iter().skip(from) {
        let path = seg_path(category, name);
        let b = st.read(&path).map_err(io_err(&path))?;
        let mut h = SegmentHeader::parse(&path, &b)?;
        let cipher = ks
            .data_cipher(&h.key_id)
            .ok_or_else(|| corrupt(&path, None, None, "no data key"))?;
        let (mut next, mut hash) = state.unwrap_or((h.first_seq, h.prev_hash));
        h.first_seq = next;
        h.prev_hash = hash;
        let mut out = h.encode();
        let mut f = Frames::new(&b, h.len);
        while let Next::Record(r) = f.next_record() {
            let mut buf = r.sealed.to_vec();
            let pt = cipher
                .open_in_place(&format::record_nonce(r.seq), r.aad(), &mut buf)
                .ok_or_else(|| corrupt(&path, Some(r.seq), Some(r.offset), "does not decrypt"))?;
            let mut ev = codec::decode_event(pt, &mut |k| ks.subject_cipher(k))
                .map_err(|e| corrupt(&path, Some(r.seq), Some(r.offset), e))?;
            if !edit(r.seq, &mut ev) {
                continue;
            }
            let start = format::begin_record(&mut out, r.kind, next, ev.time.0);
            let body = out.len();
            codec::encode_event(&ev, &mut |_, _| Ok(None), &mut nonces, &mut out)?;
            let n = out.len() - body;
            format::set_record_len(&mut out, start, n);
            let aad = out[start..body].to_vec();
            cipher.seal_tail(&format::record_nonce(next), &aad, &mut out, body);
            hash = format::finish_record(&mut out, start, &hash);
            next += 1;
        }
        st.remove(&path).map_err(io_err(&path))?;
        let new_path = seg_path(category, &rename(name, h.first_seq));
        st.write_atomic(&new_path, &out)
            .map_err(io_err(&new_path))?;
        state = Some((next, hash));
    }
    Ok(())
}

fn rename(name: &str, first_seq: u64) -> String {
    let day = name
        .strip_suffix(".seg")
        .and_then(|s| s.split_once('-'))
        .map_or("0", |(_, d)| d);
    format::segment_name(first_seq, day)
}
