//! Decoding an [`Entry`]'s value bytes on demand: the methods the model's key record offers, kept
//! with the decoder so that the model holds data only.

use super::summary::{summarize_value, ValueSummary};
use super::value::{self, Arena, BlobStore, NoStore};
use crate::error::{DecodeError, Result};
use crate::model::{Entry, Value};

impl<'a> Entry<'a> {
    /// Decodes the value into its typed form.
    ///
    /// ```
    /// # use rdbkit::{Decoder, Item, Value, Elem};
    /// # let dump = rdbkit::testing::tiny_dump();
    /// for item in Decoder::new(&dump) {
    ///     if let Item::Entry(e) = item? {
    ///         assert_eq!(e.key.as_ref(), b"greeting");
    ///         assert_eq!(e.value()?, Value::String(Elem::from(&b"hello"[..])));
    ///     }
    /// }
    /// # Ok::<(), rdbkit::DecodeError>(())
    /// ```
    pub fn value(&self) -> Result<Value<'a>> {
        self.decode_with(self.raw, &mut NoStore)
    }

    /// Decodes `raw` (this entry's value bytes) with blobs decompressed into `store`.
    fn decode_with<'s, S: BlobStore<'s>>(&self, raw: &'s [u8], store: &mut S) -> Result<Value<'s>> {
        value::decode_value(self.encoding(), raw, self.value_offset, store)
            .map_err(|e| e.with_key(&self.key))
    }

    /// Like [`Entry::value`], but LZF-compressed blobs (listpacks, ziplists, intsets) are
    /// decompressed into `scratch`, which the elements then borrow: no allocation per element.
    /// Reuse one scratch buffer across entries.
    ///
    /// ```
    /// # let dump = rdbkit::testing::tiny_dump();
    /// let mut scratch = Vec::new();
    /// for item in rdbkit::Decoder::new(&dump) {
    ///     if let rdbkit::Item::Entry(e) = item? {
    ///         assert_eq!(e.value_in(&mut scratch)?, e.value()?);
    ///     }
    /// }
    /// # Ok::<(), rdbkit::DecodeError>(())
    /// ```
    pub fn value_in<'s>(&'s self, scratch: &'s mut Vec<u8>) -> Result<Value<'s>> {
        self.size_scratch(scratch);
        self.decode_with(self.raw, &mut Arena::new(scratch))
    }

    /// Checks the value as [`Entry::value_in`] does (the same errors) and returns its element
    /// count, emptiness and module type, without building it where the encoding allows.
    pub(crate) fn summary_in(&self, scratch: &mut Vec<u8>) -> Result<ValueSummary, DecodeError> {
        self.size_scratch(scratch);
        summarize_value(
            self.encoding(),
            self.raw,
            self.value_offset,
            &mut Arena::new(scratch),
        )
        .map_err(|e| e.with_key(&self.key))
    }

    /// Empties `scratch` and makes it as long as the value's LZF blobs decompress to.
    fn size_scratch(&self, scratch: &mut Vec<u8>) {
        let total = value::lzf_total(self.encoding(), self.raw);
        scratch.clear();
        scratch.resize(total, 0);
    }
}
