//! RediSearch index definitions, read from the module's aux record (`ft_index0`, saved before the
//! keys): what `FT.CREATE` (plus `FT.ALIASADD` and `FT.SYNUPDATE`) declared, so that `info` can
//! list the indexes and `import` can recreate them on a target that cannot load the aux data.
//!
//! Encoding version read (RediSearch 2.10 `Indexes_RdbSave` → `IndexSpec_RdbSave`,
//! `FieldSpec_RdbSave`, `SchemaRule_RdbSave`, `VecSim_RdbSave`): **23** (`INDEX_GEOMETRY_VERSION`,
//! written by RediSearch 2.8 and 2.10). Every flag and field option is placed against a real dump
//! of the module; a version, an index flag, a field type or option bit that is not placed, is an
//! error and the aux record stays opaque (never misread).
//!
//! Layout of one index (after a UINT count of indexes): name (STRING, NUL-terminated), flags
//! (UINT), field count (UINT), the fields, the rule (document type, prefixes, optional filter,
//! language, score and payload fields, default score DOUBLE, default language UINT), the custom
//! stop words when flag `0x08` is set, the synonym map when flag `0x100` is set, the timeout
//! (UINT, ms, `-1000` unless TEMPORARY), the aliases. A field: name, a UINT 1 and its path when it
//! differs (`$.path AS name`), types, options, sort index (SINT); TEXT adds its id and weight,
//! TAG its flags and separator, VECTOR its blob size and parameters, GEOSHAPE its coordinates.

use serde_json::{json, Value};

use super::{unknown_encver, Ops};
use crate::error::Result;

/// The aux type name (`IndexSpecType` of RediSearch).
pub const AUX_TYPE: &str = "ft_index0";
/// The encoding version read.
pub const ENCVER: u32 = 23;

// Index flags (`IndexFlags`, spec.h).
const IDX_TERM_OFFSETS: u64 = 0x01;
const IDX_FIELD_FLAGS: u64 = 0x02;
const IDX_MULTI_VALUE: u64 = 0x04;
const IDX_CUSTOM_STOPWORDS: u64 = 0x08;
const IDX_FREQS: u64 = 0x10;
const IDX_NUMERIC: u64 = 0x20;
const IDX_BYTE_OFFSETS: u64 = 0x40;
const IDX_WIDE_SCHEMA: u64 = 0x80;
const IDX_SMAP: u64 = 0x100;
const IDX_TEMPORARY: u64 = 0x200;
const IDX_PHONETIC: u64 = 0x400;
const IDX_ASYNC: u64 = 0x800;
const IDX_SKIP_INITIAL_SCAN: u64 = 0x1000;
const IDX_FROM_LLAPI: u64 = 0x2000;
const IDX_FIELD_ALIAS: u64 = 0x4000;
const IDX_VECSIM: u64 = 0x8000;
const IDX_SUFFIX_TRIE: u64 = 0x10000;
const IDX_UNDEFINED_ORDER: u64 = 0x20000;
const IDX_GEOMETRY: u64 = 0x40000;
const IDX_NON_EMPTY: u64 = 0x80000;
/// Flags the module derives from the schema (caches), not options of `FT.CREATE`.
const IDX_DERIVED: u64 = IDX_MULTI_VALUE
    | IDX_CUSTOM_STOPWORDS
    | IDX_NUMERIC
    | IDX_SMAP
    | IDX_PHONETIC
    | IDX_FIELD_ALIAS
    | IDX_VECSIM
    | IDX_SUFFIX_TRIE
    | IDX_UNDEFINED_ORDER
    | IDX_GEOMETRY
    | IDX_NON_EMPTY;
const IDX_KNOWN: u64 = IDX_DERIVED
    | IDX_TERM_OFFSETS
    | IDX_FIELD_FLAGS
    | IDX_FREQS
    | IDX_BYTE_OFFSETS
    | IDX_WIDE_SCHEMA
    | IDX_TEMPORARY
    | IDX_ASYNC
    | IDX_SKIP_INITIAL_SCAN
    | IDX_FROM_LLAPI;

// Field types (`FieldType`).
const T_TEXT: u64 = 1;
const T_NUMERIC: u64 = 2;
const T_GEO: u64 = 4;
const T_TAG: u64 = 8;
const T_VECTOR: u64 = 16;
const T_GEOSHAPE: u64 = 32;

// Field options (`FieldSpecOptions`).
const F_SORTABLE: u64 = 0x01;
const F_NOSTEM: u64 = 0x02;
const F_NOINDEX: u64 = 0x04;
const F_PHONETIC: u64 = 0x08;
const F_DYNAMIC: u64 = 0x10;
const F_UNF: u64 = 0x20;
const F_SUFFIX_TRIE: u64 = 0x40;
const F_UNDEFINED_ORDER: u64 = 0x80;
const F_INDEX_EMPTY: u64 = 0x100;
const F_INDEX_MISSING: u64 = 0x200;
const F_KNOWN: u64 = 0x3ff;

// Tag flags (`TagFieldFlags`); the default is TRIM_SPACE | REMOVE_ACCENTS.
const TAG_CASE_SENSITIVE: u64 = 0x01;
const TAG_DEFAULT: u64 = 0x06;

/// `RSLanguage`, in enum order.
const LANGUAGES: [&str; 29] = [
    "english",
    "arabic",
    "basque",
    "catalan",
    "chinese",
    "danish",
    "dutch",
    "finnish",
    "french",
    "german",
    "greek",
    "hindi",
    "hungarian",
    "italian",
    "indonesian",
    "irish",
    "lithuanian",
    "nepali",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "spanish",
    "swedish",
    "tamil",
    "turkish",
    "armenian",
    "serbian",
    "yiddish",
];
/// `VecSimType`.
const VEC_TYPES: [&str; 4] = ["FLOAT32", "FLOAT64", "BFLOAT16", "FLOAT16"];
/// `VecSimMetric`.
const VEC_METRICS: [&str; 3] = ["L2", "IP", "COSINE"];
/// `GEOMETRY_COORDS`.
const COORDS: [&str; 2] = ["FLAT", "SPHERICAL"];

/// A vector field's parameters (`VecSimParams`; HNSW is saved as a tiered index over HNSW).
#[derive(Debug, Clone, PartialEq)]
pub struct Vector {
    /// `FLAT` or `HNSW`.
    pub algorithm: &'static str,
    /// `FLOAT32`…
    pub data_type: &'static str,
    /// Dimensions.
    pub dim: u64,
    /// `L2`, `IP` or `COSINE`.
    pub metric: &'static str,
    /// Several vectors per document (a JSON path with wildcards; derived, not an option).
    pub multi: bool,
    /// `INITIAL_CAP`.
    pub initial_cap: u64,
    /// `BLOCK_SIZE` (FLAT).
    pub block_size: Option<u64>,
    /// `M`, `EF_CONSTRUCTION`, `EF_RUNTIME` (HNSW).
    pub hnsw: Option<(u64, u64, u64)>,
}

/// One schema field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The hash field or JSON path indexed (`identifier` in `FT.INFO`).
    pub identifier: String,
    /// The name queries use (`attribute`; the identifier unless `AS` gave another).
    pub attribute: String,
    /// Type bits.
    pub types: u64,
    /// Option bits.
    pub options: u64,
    /// TEXT weight.
    pub weight: Option<f64>,
    /// TAG flags and separator (`\0`: none, the JSON default).
    pub tag: Option<(u64, u8)>,
    /// VECTOR parameters.
    pub vector: Option<Vector>,
    /// GEOSHAPE coordinate system.
    pub coords: Option<&'static str>,
}

/// One index definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    /// Index name.
    pub name: String,
    /// Flag bits.
    pub flags: u64,
    /// `HASH` or `JSON`.
    pub on: String,
    /// Key prefixes.
    pub prefixes: Vec<String>,
    /// `FILTER` expression.
    pub filter: Option<String>,
    /// Default language.
    pub language: &'static str,
    /// `LANGUAGE_FIELD`.
    pub language_field: Option<String>,
    /// Default score.
    pub score: f64,
    /// `SCORE_FIELD`.
    pub score_field: Option<String>,
    /// `PAYLOAD_FIELD`.
    pub payload_field: Option<String>,
    /// Custom stop words (`None`: the default list).
    pub stopwords: Option<Vec<String>>,
    /// Synonym groups: group id → terms (`FT.SYNUPDATE`).
    pub synonyms: Vec<(String, Vec<String>)>,
    /// `TEMPORARY` seconds.
    pub temporary: Option<u64>,
    /// Aliases (`FT.ALIASADD`).
    pub aliases: Vec<String>,
    /// The schema.
    pub fields: Vec<Field>,
}

/// Reads the index definitions of a `ft_index0` aux record of encoding version `encver` from its
/// opcode stream `body` (at absolute offset `offset`).
pub fn read(body: &[u8], offset: u64, encver: u32) -> Result<Vec<Index>> {
    if encver != ENCVER {
        return Err(unknown_encver(offset, AUX_TYPE, encver, "version 23"));
    }
    let mut o = Ops::new(body, offset, AUX_TYPE);
    let n = o.uint("the number of indexes")?;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(read_index(&mut o)?);
    }
    o.end()?;
    Ok(out)
}

/// The index definitions of `item` when it is RediSearch's aux record (`None` for any other item).
pub fn of_item(item: &crate::model::Item<'_>) -> Option<Result<Vec<Index>>> {
    match item {
        crate::model::Item::ModuleAux {
            id,
            body,
            body_offset,
            ..
        } if id.name() == AUX_TYPE => Some(read(body, *body_offset, id.encver())),
        _ => None,
    }
}

/// A NUL-terminated string (`SaveStringBuffer(s, strlen(s) + 1)`).
fn cstr(o: &mut Ops<'_>, what: &'static str) -> Result<String> {
    let at = o.offset();
    let b = o.string(what)?;
    let b = b.strip_suffix(&[0]).unwrap_or(&b);
    utf8(o, at, b, what)
}

/// A string saved without a terminator.
fn plain(o: &mut Ops<'_>, what: &'static str) -> Result<String> {
    let at = o.offset();
    let b = o.string(what)?;
    utf8(o, at, &b, what)
}

fn utf8(o: &Ops<'_>, at: u64, b: &[u8], what: &'static str) -> Result<String> {
    match std::str::from_utf8(b) {
        Ok(s) if !s.contains('\0') => Ok(s.to_string()),
        _ => Err(o.invalid(format!("{what} at offset {at} is not UTF-8 text"))),
    }
}

fn opt_cstr(o: &mut Ops<'_>, what: &'static str) -> Result<Option<String>> {
    match o.uint(what)? {
        0 => Ok(None),
        1 => cstr(o, what).map(Some),
        n => Err(o.invalid(format!("{what}: presence flag {n}, expected 0 or 1"))),
    }
}

fn pick(o: &Ops<'_>, table: &[&'static str], v: u64, what: &str) -> Result<&'static str> {
    usize::try_from(v)
        .ok()
        .and_then(|i| table.get(i).copied())
        .ok_or_else(|| o.invalid(format!("{what} {v} is not one rdbkit places")))
}

fn read_index(o: &mut Ops<'_>) -> Result<Index> {
    let name = cstr(o, "the index name")?;
    let flags = o.uint("the index flags")?;
    if flags & !IDX_KNOWN != 0 {
        return Err(o.invalid(format!(
            "index {name}: flag bits {:#x} are not ones rdbkit places",
            flags & !IDX_KNOWN
        )));
    }
    let nfields = o.uint("the number of fields")?;
    let mut fields = Vec::new();
    for _ in 0..nfields {
        fields.push(read_field(o, &name)?);
    }
    let on = cstr(o, "the document type")?;
    if on != "HASH" && on != "JSON" {
        return Err(o.invalid(format!("index {name}: document type {on:?}")));
    }
    let nprefixes = o.uint("the number of prefixes")?;
    let mut prefixes = Vec::new();
    for _ in 0..nprefixes {
        prefixes.push(cstr(o, "a prefix")?);
    }
    let filter = opt_cstr(o, "the filter")?;
    let language_field = opt_cstr(o, "the language field")?;
    let score_field = opt_cstr(o, "the score field")?;
    let payload_field = opt_cstr(o, "the payload field")?;
    let score = o.double("the default score")?;
    let lang = o.uint("the default language")?;
    let language = pick(o, &LANGUAGES, lang, "language")?;
    let stopwords = if flags & IDX_CUSTOM_STOPWORDS != 0 {
        let n = o.uint("the number of stop words")?;
        let mut words = Vec::new();
        for _ in 0..n {
            words.push(plain(o, "a stop word")?);
        }
        Some(words)
    } else {
        None
    };
    let mut synonyms: Vec<(String, Vec<String>)> = Vec::new();
    if flags & IDX_SMAP != 0 {
        let n = o.uint("the number of synonym terms")?;
        for _ in 0..n {
            let term = cstr(o, "a synonym term")?;
            let ids = o.uint("the number of synonym groups")?;
            for _ in 0..ids {
                let gid = cstr(o, "a synonym group id")?;
                match synonyms.iter_mut().find(|(g, _)| *g == gid) {
                    Some((_, terms)) => terms.push(term.clone()),
                    None => synonyms.push((gid, vec![term.clone()])),
                }
            }
        }
        synonyms.sort();
        for (_, terms) in &mut synonyms {
            terms.sort();
        }
    }
    let timeout = o.sint("the timeout")?;
    let temporary = if flags & IDX_TEMPORARY != 0 {
        Some(u64::try_from(timeout / 1000).unwrap_or(0))
    } else {
        None
    };
    let naliases = o.uint("the number of aliases")?;
    let mut aliases = Vec::new();
    for _ in 0..naliases {
        aliases.push(cstr(o, "an alias")?);
    }
    Ok(Index {
        name,
        flags,
        on,
        prefixes,
        filter,
        language,
        language_field,
        score,
        score_field,
        payload_field,
        stopwords,
        synonyms,
        temporary,
        aliases,
        fields,
    })
}

fn read_field(o: &mut Ops<'_>, index: &str) -> Result<Field> {
    let attribute = cstr(o, "a field name")?;
    let identifier = match o.uint("the field path flag")? {
        0 => attribute.clone(),
        1 => cstr(o, "a field path")?,
        n => {
            return Err(o.invalid(format!(
                "index {index} field {attribute}: path flag {n}, expected 0 or 1"
            )))
        }
    };
    let types = o.uint("the field types")?;
    let options = o.uint("the field options")?;
    o.sint("the sort index")?;
    let bad =
        |o: &Ops<'_>, what: String| o.invalid(format!("index {index} field {attribute}: {what}"));
    if types == 0 || types & !(T_TEXT | T_NUMERIC | T_GEO | T_TAG | T_VECTOR | T_GEOSHAPE) != 0 {
        return Err(bad(
            o,
            format!("type bits {types:#x} are not ones rdbkit places"),
        ));
    }
    if options & !F_KNOWN != 0 {
        return Err(bad(
            o,
            format!(
                "option bits {:#x} are not ones rdbkit places",
                options & !F_KNOWN
            ),
        ));
    }
    let dynamic = options & F_DYNAMIC != 0;
    let weight = if types & T_TEXT != 0 || dynamic {
        o.uint("the text field id")?;
        Some(o.double("the text weight")?)
    } else {
        None
    };
    let tag = if types & T_TAG != 0 || dynamic {
        let flags = o.uint("the tag flags")?;
        if flags & !7 != 0 {
            return Err(bad(o, format!("tag flags {flags:#x}")));
        }
        let sep = o.string("the tag separator")?;
        let &[sep] = &*sep else {
            return Err(bad(o, format!("a tag separator of {} bytes", sep.len())));
        };
        Some((flags, sep))
    } else {
        None
    };
    let vector = if types & T_VECTOR != 0 {
        o.uint("the vector blob size")?;
        Some(read_vector(o, &bad)?)
    } else {
        None
    };
    let coords = if types & T_GEOSHAPE != 0 || dynamic {
        let c = o.uint("the geometry coordinates")?;
        Some(pick(o, &COORDS, c, "coordinate system")?)
    } else {
        None
    };
    Ok(Field {
        identifier,
        attribute,
        types,
        options,
        weight,
        tag,
        vector,
        coords,
    })
}

fn read_vector(
    o: &mut Ops<'_>,
    bad: &dyn Fn(&Ops<'_>, String) -> crate::error::DecodeError,
) -> Result<Vector> {
    let algo = o.uint("the vector algorithm")?;
    let tiered = match algo {
        0 => false,
        2 => {
            let primary = o.uint("the tiered primary algorithm")?;
            if primary != 1 {
                return Err(bad(
                    o,
                    format!("tiered vector index over algorithm {primary}"),
                ));
            }
            o.uint("the swap job threshold")?;
            true
        }
        a => return Err(bad(o, format!("vector algorithm {a}"))),
    };
    let t = o.uint("the vector type")?;
    let data_type = pick(o, &VEC_TYPES, t, "vector type")?;
    let dim = o.uint("the vector dimensions")?;
    let m = o.uint("the distance metric")?;
    let metric = pick(o, &VEC_METRICS, m, "distance metric")?;
    let multi = o.uint("the multi-value flag")? != 0;
    let initial_cap = o.uint("the initial capacity")?;
    let (block_size, hnsw) = if tiered {
        let m = o.uint("M")?;
        let efc = o.uint("EF_CONSTRUCTION")?;
        let efr = o.uint("EF_RUNTIME")?;
        (None, Some((m, efc, efr)))
    } else {
        (Some(o.uint("the block size")?), None)
    };
    Ok(Vector {
        algorithm: if tiered { "HNSW" } else { "FLAT" },
        data_type,
        dim,
        metric,
        multi,
        initial_cap,
        block_size,
        hnsw,
    })
}

/// The matcher `FT.CREATE` is given for a `PHONETIC` field (the dump holds only the flag).
const PHONETIC_MATCHER: &str = "dm:en";

/// Default `INITIAL_CAP` / `BLOCK_SIZE` of a vector field (not repeated in `FT.CREATE`).
const VEC_DEFAULT_BLOCK: u64 = 1024;

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl Field {
    /// The type names (`TEXT`, `NUMERIC`, `GEO`, `TAG`, `VECTOR`, `GEOSHAPE`).
    pub fn type_names(&self) -> Vec<&'static str> {
        [
            (T_TEXT, "TEXT"),
            (T_NUMERIC, "NUMERIC"),
            (T_GEO, "GEO"),
            (T_TAG, "TAG"),
            (T_VECTOR, "VECTOR"),
            (T_GEOSHAPE, "GEOSHAPE"),
        ]
        .into_iter()
        .filter(|(b, _)| self.types & b != 0)
        .map(|(_, n)| n)
        .collect()
    }

    /// The field's `FT.CREATE` schema arguments after the identifier and `AS` (type and options),
    /// or what of it `FT.CREATE` cannot express.
    pub fn schema_args(&self) -> std::result::Result<Vec<String>, Vec<String>> {
        let (a, cannot) = self.schema_parts();
        if cannot.is_empty() {
            Ok(a)
        } else {
            Err(cannot)
        }
    }

    /// The schema arguments that can be said, and what cannot.
    fn schema_parts(&self) -> (Vec<String>, Vec<String>) {
        let mut a: Vec<String> = Vec::new();
        let mut cannot = Vec::new();
        let types = self.type_names();
        if types.len() != 1 || self.options & F_DYNAMIC != 0 {
            cannot.push(format!(
                "field {}: several types at once ({})",
                self.attribute,
                types.join("+")
            ));
            return (a, cannot);
        }
        a.push(types[0].to_string());
        match self.types {
            T_TEXT => {
                if self.options & F_NOSTEM != 0 {
                    a.push("NOSTEM".into());
                }
                if let Some(w) = self.weight.filter(|w| *w != 1.0) {
                    a.extend(["WEIGHT".into(), fmt_num(w)]);
                }
                // RediSearch keeps only the flag: every matcher it takes is Double Metaphone
                // (`dm:en`, `dm:fr`, `dm:pt`, `dm:es`) and the language is not used, so any
                // of them makes the same index
                if self.options & F_PHONETIC != 0 {
                    a.extend(["PHONETIC".into(), PHONETIC_MATCHER.into()]);
                }
            }
            T_TAG => {
                let (flags, sep) = self.tag.unwrap_or((TAG_DEFAULT, b','));
                if sep != 0 {
                    a.extend(["SEPARATOR".into(), (sep as char).to_string()]);
                }
                if flags & TAG_CASE_SENSITIVE != 0 {
                    a.push("CASESENSITIVE".into());
                }
                if flags & TAG_DEFAULT != TAG_DEFAULT {
                    cannot.push(format!(
                        "field {}: tag flags {flags:#x} (no space trimming or accent removal)",
                        self.attribute
                    ));
                }
            }
            T_VECTOR => {
                if let Some(v) = &self.vector {
                    let mut p: Vec<String> = vec![
                        "TYPE".into(),
                        v.data_type.into(),
                        "DIM".into(),
                        v.dim.to_string(),
                        "DISTANCE_METRIC".into(),
                        v.metric.into(),
                    ];
                    if v.initial_cap != VEC_DEFAULT_BLOCK {
                        p.extend(["INITIAL_CAP".into(), v.initial_cap.to_string()]);
                    }
                    if let Some(b) = v.block_size {
                        p.extend(["BLOCK_SIZE".into(), b.to_string()]);
                    }
                    if let Some((m, efc, efr)) = v.hnsw {
                        p.extend([
                            "M".into(),
                            m.to_string(),
                            "EF_CONSTRUCTION".into(),
                            efc.to_string(),
                            "EF_RUNTIME".into(),
                            efr.to_string(),
                        ]);
                    }
                    a.push(v.algorithm.into());
                    a.push(p.len().to_string());
                    a.extend(p);
                }
            }
            T_GEOSHAPE => a.push(self.coords.unwrap_or("SPHERICAL").into()),
            _ => {}
        }
        if self.options & F_SUFFIX_TRIE != 0 {
            a.push("WITHSUFFIXTRIE".into());
        }
        if self.options & F_INDEX_EMPTY != 0 {
            a.push("INDEXEMPTY".into());
        }
        if self.options & F_INDEX_MISSING != 0 {
            a.push("INDEXMISSING".into());
        }
        if self.options & F_SORTABLE != 0 {
            a.push("SORTABLE".into());
            // NUMERIC and GEO are always unnormalized; UNF is only said of TEXT and TAG
            if self.options & F_UNF != 0 && matches!(self.types, T_TEXT | T_TAG) {
                a.push("UNF".into());
            }
        }
        if self.options & F_NOINDEX != 0 {
            a.push("NOINDEX".into());
        }
        let _ = F_UNDEFINED_ORDER; // derived (JSON arrays of text), not an option
        (a, cannot)
    }

    /// The options as words, for `info` (the schema arguments without the type; `PHONETIC` without
    /// a matcher, which the dump does not hold).
    pub fn option_words(&self) -> Vec<String> {
        let (mut a, _) = self.schema_parts();
        if !a.is_empty() {
            a.remove(0);
        }
        if let Some(at) = a.iter().position(|w| w == "PHONETIC") {
            a.remove(at + 1);
        }
        a
    }
}

impl Index {
    /// Created `SKIPINITIALSCAN`: it indexes only documents written after it was created.
    pub fn skips_initial_scan(&self) -> bool {
        self.flags & IDX_SKIP_INITIAL_SCAN != 0
    }

    /// The index options of `FT.CREATE` (from `ON` to the stop words) and what of them the command
    /// cannot express.
    fn index_words(&self) -> (Vec<String>, Vec<String>) {
        let mut cannot = Vec::new();
        let mut a = vec!["ON".into(), self.on.clone()];
        // no PREFIX means the one empty prefix
        if self.prefixes != [""] {
            a.push("PREFIX".into());
            a.push(self.prefixes.len().to_string());
            a.extend(self.prefixes.iter().cloned());
        }
        if let Some(f) = &self.filter {
            a.extend(["FILTER".into(), f.clone()]);
        }
        if self.language != "english" {
            a.extend(["LANGUAGE".into(), self.language.into()]);
        }
        if let Some(f) = &self.language_field {
            a.extend(["LANGUAGE_FIELD".into(), f.clone()]);
        }
        if self.score != 1.0 {
            a.extend(["SCORE".into(), fmt_num(self.score)]);
        }
        if let Some(f) = &self.score_field {
            a.extend(["SCORE_FIELD".into(), f.clone()]);
        }
        if let Some(f) = &self.payload_field {
            a.extend(["PAYLOAD_FIELD".into(), f.clone()]);
        }
        if self.flags & IDX_WIDE_SCHEMA != 0 {
            a.push("MAXTEXTFIELDS".into());
        }
        if let Some(t) = self.temporary {
            a.extend(["TEMPORARY".into(), t.to_string()]);
        }
        match (
            self.flags & IDX_TERM_OFFSETS != 0,
            self.flags & IDX_BYTE_OFFSETS != 0,
        ) {
            (true, true) => {}
            (false, false) => a.push("NOOFFSETS".into()),
            (true, false) => a.push("NOHL".into()),
            (false, true) => cannot.push("byte offsets without term offsets".to_string()),
        }
        if self.flags & IDX_FIELD_FLAGS == 0 {
            a.push("NOFIELDS".into());
        }
        if self.flags & IDX_FREQS == 0 {
            a.push("NOFREQS".into());
        }
        if self.flags & IDX_SKIP_INITIAL_SCAN != 0 {
            a.push("SKIPINITIALSCAN".into());
        }
        if self.flags & IDX_ASYNC != 0 {
            cannot.push("the ASYNC flag".to_string());
        }
        if self.flags & IDX_FROM_LLAPI != 0 {
            cannot.push("created by another module (low-level API)".to_string());
        }
        if let Some(words) = &self.stopwords {
            a.push("STOPWORDS".into());
            a.push(words.len().to_string());
            a.extend(words.iter().cloned());
        }
        (a, cannot)
    }

    /// `FT.CREATE` arguments (without the command name) that recreate this index, or what of it
    /// the command cannot express (each named).
    pub fn create_args(&self) -> std::result::Result<Vec<String>, Vec<String>> {
        let (mut a, mut cannot) = self.index_words();
        a.insert(0, self.name.clone());
        a.push("SCHEMA".into());
        for f in &self.fields {
            a.push(f.identifier.clone());
            if f.attribute != f.identifier {
                a.extend(["AS".into(), f.attribute.clone()]);
            }
            match f.schema_args() {
                Ok(args) => a.extend(args),
                Err(c) => cannot.extend(c),
            }
        }
        if cannot.is_empty() {
            Ok(a)
        } else {
            Err(cannot)
        }
    }

    /// The commands that follow `FT.CREATE`: `FT.SYNUPDATE` per synonym group (without a rescan
    /// of the documents the create already indexes… the module rescans them) and `FT.ALIASADD`
    /// per alias.
    pub fn follow_up(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for (gid, terms) in &self.synonyms {
            let mut c = vec!["FT.SYNUPDATE".to_string(), self.name.clone(), gid.clone()];
            c.extend(terms.iter().cloned());
            out.push(c);
        }
        for alias in &self.aliases {
            out.push(vec![
                "FT.ALIASADD".to_string(),
                alias.clone(),
                self.name.clone(),
            ]);
        }
        out
    }

    /// The definition as text lines (for `info`): the index options on one line, one line per
    /// field, then what `FT.CREATE` cannot express.
    pub fn to_text(&self) -> String {
        let (words, _) = self.index_words();
        let mut head = vec![format!("  {}", self.name)];
        head.extend(words.iter().map(|w| {
            if w.is_empty() || w.contains(' ') {
                format!("{w:?}")
            } else {
                w.clone()
            }
        }));
        if !self.aliases.is_empty() {
            head.push(format!("aliases {}", self.aliases.join(" ")));
        }
        if !self.synonyms.is_empty() {
            head.push(format!("synonym groups {}", self.synonyms.len()));
        }
        let mut s = head.join(" ");
        s.push('\n');
        for f in &self.fields {
            let name = if f.attribute == f.identifier {
                f.identifier.clone()
            } else {
                format!("{} AS {}", f.identifier, f.attribute)
            };
            let mut line = format!("    {name:<24} {}", f.type_names().join("+"));
            for w in f.option_words() {
                line.push(' ');
                line.push_str(&w);
            }
            s.push_str(line.trim_end());
            s.push('\n');
        }
        if let Err(c) = self.create_args() {
            s.push_str(&format!(
                "    not expressible by FT.CREATE: {}\n",
                c.join("; ")
            ));
        }
        s
    }

    /// The definition as JSON (for `info --format json`).
    pub fn to_json(&self) -> Value {
        let fields: Vec<Value> = self
            .fields
            .iter()
            .map(|f| {
                let mut v = json!({
                    "identifier": f.identifier,
                    "attribute": f.attribute,
                    "type": f.type_names().join("+"),
                    "options": f.option_words(),
                });
                if let Some(vec) = &f.vector {
                    v["vector"] = json!({
                        "algorithm": vec.algorithm,
                        "data_type": vec.data_type,
                        "dim": vec.dim,
                        "distance_metric": vec.metric,
                        "multi": vec.multi,
                        "initial_cap": vec.initial_cap,
                        "block_size": vec.block_size,
                        "m": vec.hnsw.map(|h| h.0),
                        "ef_construction": vec.hnsw.map(|h| h.1),
                        "ef_runtime": vec.hnsw.map(|h| h.2),
                    });
                }
                v
            })
            .collect();
        json!({
            "name": self.name,
            "on": self.on,
            "prefixes": self.prefixes,
            "filter": self.filter,
            "language": self.language,
            "language_field": self.language_field,
            "score": self.score,
            "score_field": self.score_field,
            "payload_field": self.payload_field,
            "stopwords": self.stopwords,
            "synonyms": self.synonyms.iter().map(|(g, t)| json!({"group": g, "terms": t})).collect::<Vec<_>>(),
            "temporary": self.temporary,
            "aliases": self.aliases,
            "fields": fields,
            "create": self.create_args().ok(),
            "not_expressible": self.create_args().err(),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The aux body of a real RediSearch 2.10.5 dump (Redis 8.2.3): `idx` ON HASH PREFIX 2 doc:
    /// item: FILTER '@n > 0' LANGUAGE german SCORE 0.5 SCORE_FIELD sc LANGUAGE_FIELD lang
    /// STOPWORDS 2 foo bar, schema title TEXT WEIGHT 2.5 NOSTEM SORTABLE, n NUMERIC SORTABLE,
    /// tags TAG SEPARATOR ; CASESENSITIVE, loc GEO, v VECTOR FLAT (FLOAT32, 4, L2), h VECTOR
    /// HNSW (FLOAT32, 8, COSINE, M 12, EF_CONSTRUCTION 100, EF_RUNTIME 20); `jidx` ON JSON
    /// PREFIX 1 j: with `$.name AS name TEXT`, `$.age AS age NUMERIC`, `$.tags[*] AS tags TAG`.
    pub(crate) const REAL: &str = "\
        020205046964780002800008805b020605067469746c65000200020102030200020004000000000000044005\
        026e000200020202210201050574616773000200020802000281ffffffffffffffff020705013b05046c6f63\
        000200020402000281ffffffffffffffff050276000200021002000281ffffffffffffffff02100200020002\
        0402000200024400024400050268000200021002000281ffffffffffffffff02200202020102000200020802\
        020200024400020c02406402140505484153480002020505646f633a0005066974656d3a0002010507406e20\
        3e203000020105056c616e670002010503736300020004000000000000e03f0209020205036261720503666f\
        6f0281fffffffffffffc18020005056a69647800028000084053020305056e616d650002010507242e6e616d\
        6500020102000281ffffffffffffffff020004000000000000f03f05046167650002010506242e6167650002\
        0202000281ffffffffffffffff050574616773000201050a242e746167735b2a5d00020802000281ffffffff\
        ffffffff020605010005054a534f4e00020105036a3a00020002000200020004000000000000f03f02000281\
        fffffffffffffc18020000";

    pub(crate) fn real() -> Vec<u8> {
        let hex: String = REAL.chars().filter(|c| !c.is_whitespace()).collect();
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn reads_a_real_dump() {
        let idx = read(&real(), 100, 23).unwrap();
        assert_eq!(idx.len(), 2);
        let h = &idx[0];
        assert_eq!(h.name, "idx");
        assert_eq!(
            h.create_args().unwrap().join(" "),
            "idx ON HASH PREFIX 2 doc: item: FILTER @n > 0 LANGUAGE german LANGUAGE_FIELD lang \
             SCORE 0.5 SCORE_FIELD sc STOPWORDS 2 bar foo SCHEMA title TEXT NOSTEM WEIGHT 2.5 \
             SORTABLE n NUMERIC SORTABLE tags TAG SEPARATOR ; CASESENSITIVE loc GEO v VECTOR \
             FLAT 8 TYPE FLOAT32 DIM 4 DISTANCE_METRIC L2 BLOCK_SIZE 1024 h VECTOR HNSW 12 TYPE \
             FLOAT32 DIM 8 DISTANCE_METRIC COSINE M 12 EF_CONSTRUCTION 100 EF_RUNTIME 20"
        );
        let j = &idx[1];
        assert_eq!(
            j.create_args().unwrap().join(" "),
            "jidx ON JSON PREFIX 1 j: SCHEMA $.name AS name TEXT $.age AS age NUMERIC \
             $.tags[*] AS tags TAG"
        );
        assert_eq!(j.temporary, None);
    }

    #[test]
    fn other_versions_and_unplaced_bits_are_errors() {
        let e = read(&real(), 100, 24).unwrap_err();
        assert!(
            e.to_string().contains("ft_index0 encoding version 24"),
            "{e}"
        );
        // flag 0x100000 on the first index
        let mut b = real();
        let at = b
            .windows(5)
            .position(|w| w == [0x80, 0, 8, 0x80, 0x5b])
            .unwrap();
        b[at + 1] = 0x10;
        let e = read(&b, 0, 23).unwrap_err();
        assert!(e.to_string().contains("flag bits 0x100000"), "{e}");
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let b = real();
        for n in 0..b.len() {
            assert!(read(&b[..n], 0, 23).is_err(), "{n}");
        }
    }
}
