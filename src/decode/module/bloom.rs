//! RedisBloom's five types, read to their parameters (the bit arrays, counters and centroids are
//! walked but not kept).
//!
//! Encoding versions read (RedisBloom 2.x `rebloom.c`, `rm_cms.c`, `rm_topk.c`, `rm_tdigest.c`):
//! - `MBbloom--` **1–4** (`BFRdbSave`; 2 adds the options, 4 the growth factor),
//! - `MBbloomCF` **4** (`CFRdbSave`, with the per-filter bucket counts),
//! - `CMSk-TYPE` **0**, `TopK-TYPE` **0**, `TDIS-TYPE` **0**.
//!
//! The memory each reports is the module's own `mem_usage` callback (what `MEMORY USAGE` adds to
//! the key's allocation), computed from the same fields.

use serde_json::json;

use super::{unknown_encver, Ops};
use crate::error::Result;

/// Scalable Bloom filter type name.
pub const BLOOM_TYPE: &str = "MBbloom--";
/// Cuckoo filter type name.
pub const CUCKOO_TYPE: &str = "MBbloomCF";
/// Count-Min sketch type name.
pub const CMS_TYPE: &str = "CMSk-TYPE";
/// Top-K type name.
pub const TOPK_TYPE: &str = "TopK-TYPE";
/// t-digest type name.
pub const TDIGEST_TYPE: &str = "TDIS-TYPE";

/// `BLOOM_OPT_NO_SCALING` in a chain's options.
const OPT_NO_SCALING: u64 = 8;
/// `sizeof(SBChain)`, `sizeof(SBLink)` on 64-bit builds.
const SBCHAIN: u64 = 32;
const SBLINK: u64 = 64;
/// `sizeof(CuckooFilter)`, `sizeof(SubCF)`.
const CUCKOO: u64 = 40;
const SUBCF: u64 = 16;
/// `sizeof(TopK)` (with its 256-entry decay table), `sizeof(Bucket)`, `sizeof(HeapBucket)`.
const TOPK: u64 = 2088;
const TOPK_BUCKET: u64 = 8;
const HEAP_BUCKET: u64 = 24;

/// One filter of a scalable Bloom filter's chain.
#[derive(Debug, Clone, PartialEq)]
pub struct BloomLink {
    /// Its capacity (`entries`).
    pub capacity: u64,
    /// Its error rate.
    pub error_rate: f64,
    /// Hash functions.
    pub hashes: u64,
    /// Bits in its array.
    pub bits: u64,
    /// Bytes of its array.
    pub bytes: u64,
    /// Items added to it.
    pub items: u64,
}

/// A scalable Bloom filter (`BF.RESERVE`/`BF.ADD`).
#[derive(Debug, Clone, PartialEq)]
pub struct BloomFilter {
    /// Items inserted (all filters).
    pub items: u64,
    /// Option bits (`BLOOM_OPT_*`).
    pub options: u64,
    /// Expansion factor of each new filter.
    pub expansion: u64,
    /// The filters, oldest first.
    pub filters: Vec<BloomLink>,
}

impl BloomFilter {
    /// Reads a `MBbloom--` value.
    pub fn read(body: &[u8], offset: u64, encver: u32) -> Result<Self> {
        if !(1..=4).contains(&encver) {
            return Err(unknown_encver(
                offset,
                BLOOM_TYPE,
                encver,
                "versions 1 to 4",
            ));
        }
        let mut o = Ops::new(body, offset, BLOOM_TYPE);
        let items = o.uint("the items inserted")?;
        let nfilters = o.uint("the number of filters")?;
        let options = if encver >= 2 {
            o.uint("the options")?
        } else {
            0
        };
        let expansion = if encver >= 4 {
            o.uint("the growth factor")?
        } else {
            2
        };
        let mut filters = Vec::new();
        for _ in 0..nfilters {
            let capacity = o.uint("a filter's capacity")?;
            let error_rate = o.double("a filter's error rate")?;
            let hashes = o.uint("a filter's hash count")?;
            o.double("a filter's bits per entry")?;
            let bits = o.uint("a filter's bit count")?;
            o.uint("a filter's n2")?;
            let bytes = o.raw_string("a filter's bit array")?.len();
            let items = o.uint("a filter's item count")?;
            filters.push(BloomLink {
                capacity,
                error_rate,
                hashes,
                bits,
                bytes,
                items,
            });
        }
        o.end()?;
        Ok(BloomFilter {
            items,
            options,
            expansion,
            filters,
        })
    }

    /// Total capacity (`BF.INFO` Capacity).
    pub fn capacity(&self) -> u64 {
        self.filters.iter().map(|f| f.capacity).sum()
    }

    /// True for a filter created `NONSCALING`.
    pub fn non_scaling(&self) -> bool {
        self.options & OPT_NO_SCALING != 0
    }

    /// `BFMemUsage` (`BF.INFO` Size).
    pub fn mem_usage(&self) -> u64 {
        SBCHAIN + self.filters.iter().map(|f| SBLINK + f.bytes).sum::<u64>()
    }

    /// The parameters as JSON.
    pub fn params(&self) -> serde_json::Value {
        json!({
            "capacity": self.capacity(),
            // the chain's first filter gets half the requested rate (ERROR_TIGHTENING_RATIO)
            "error_rate": self.filters.first().map(|f| f.error_rate * 2.0),
            "expansion": if self.non_scaling() { None } else { Some(self.expansion) },
            "filters": self.filters.len(),
            "items": self.items,
            "size": self.mem_usage(),
        })
    }
}

/// A Cuckoo filter (`CF.RESERVE`/`CF.ADD`).
#[derive(Debug, Clone, PartialEq)]
pub struct CuckooFilter {
    /// Buckets of the first filter.
    pub buckets: u64,
    /// Items inserted.
    pub items: u64,
    /// Items deleted.
    pub deleted: u64,
    /// Fingerprints per bucket.
    pub bucket_size: u64,
    /// Maximal kicks before a new filter is added.
    pub max_iterations: u64,
    /// Expansion factor.
    pub expansion: u64,
    /// Bytes of each filter's buckets.
    pub filter_bytes: Vec<u64>,
}

impl CuckooFilter {
    /// Reads a `MBbloomCF` value.
    pub fn read(body: &[u8], offset: u64, encver: u32) -> Result<Self> {
        if encver != 4 {
            return Err(unknown_encver(offset, CUCKOO_TYPE, encver, "version 4"));
        }
        let mut o = Ops::new(body, offset, CUCKOO_TYPE);
        let nfilters = o.uint("the number of filters")?;
        let buckets = o.uint("the number of buckets")?;
        let items = o.uint("the items inserted")?;
        let deleted = o.uint("the items deleted")?;
        let bucket_size = o.uint("the bucket size")?;
        let max_iterations = o.uint("the maximal iterations")?;
        let expansion = o.uint("the expansion")?;
        let mut filter_bytes = Vec::new();
        for _ in 0..nfilters {
            let n = o.uint("a filter's bucket count")?;
            let at = o.offset();
            let bytes = o.raw_string("a filter's buckets")?.len();
            if Some(bytes) != n.checked_mul(bucket_size) {
                return Err(super::Ops::new(&[], at, CUCKOO_TYPE).invalid(format!(
                    "a filter of {n} buckets of {bucket_size} holds {bytes} bytes"
                )));
            }
            filter_bytes.push(bytes);
        }
        o.end()?;
        Ok(CuckooFilter {
            buckets,
            items,
            deleted,
            bucket_size,
            max_iterations,
            expansion,
            filter_bytes,
        })
    }

    /// `CFMemUsage` (`CF.INFO` Size).
    pub fn mem_usage(&self) -> u64 {
        CUCKOO + self.filter_bytes.iter().map(|b| SUBCF + b).sum::<u64>()
    }

    /// The parameters as JSON.
    pub fn params(&self) -> serde_json::Value {
        json!({
            "buckets": self.buckets,
            "filters": self.filter_bytes.len(),
            "items": self.items,
            "deleted": self.deleted,
            "bucket_size": self.bucket_size,
            "expansion": self.expansion,
            "max_iterations": self.max_iterations,
            "size": self.mem_usage(),
        })
    }
}

/// A Count-Min sketch (`CMS.INITBYDIM`/`CMS.INITBYPROB`).
#[derive(Debug, Clone, PartialEq)]
pub struct CountMinSketch {
    /// Counters per row.
    pub width: u64,
    /// Rows.
    pub depth: u64,
    /// Total of all increments.
    pub count: u64,
}

impl CountMinSketch {
    /// Reads a `CMSk-TYPE` value.
    pub fn read(body: &[u8], offset: u64, encver: u32) -> Result<Self> {
        if encver != 0 {
            return Err(unknown_encver(offset, CMS_TYPE, encver, "version 0"));
        }
        let mut o = Ops::new(body, offset, CMS_TYPE);
        let width = o.uint("the width")?;
        let depth = o.uint("the depth")?;
        let count = o.uint("the count")?;
        let at = o.offset();
        let bytes = o.raw_string("the counters")?.len();
        if Some(bytes) != width.checked_mul(depth).and_then(|n| n.checked_mul(4)) {
            return Err(Ops::new(&[], at, CMS_TYPE)
                .invalid(format!("{width} × {depth} counters in {bytes} bytes")));
        }
        o.end()?;
        Ok(CountMinSketch {
            width,
            depth,
            count,
        })
    }

    /// `CMSMemUsage` (a pointer plus `width × depth` words).
    pub fn mem_usage(&self) -> u64 {
        8u64.saturating_add(self.width.saturating_mul(self.depth).saturating_mul(8))
    }

    /// The parameters as JSON.
    pub fn params(&self) -> serde_json::Value {
        json!({"width": self.width, "depth": self.depth, "count": self.count})
    }
}

/// A Top-K (`TOPK.RESERVE`).
#[derive(Debug, Clone, PartialEq)]
pub struct TopK {
    /// Items kept.
    pub k: u64,
    /// Counters per row.
    pub width: u64,
    /// Rows.
    pub depth: u64,
    /// Decay.
    pub decay: f64,
    /// The heavy hitters held, with their counts, highest count first (`TOPK.LIST WITHCOUNT`).
    pub list: Vec<(Vec<u8>, u64)>,
}

impl TopK {
    /// Reads a `TopK-TYPE` value.
    pub fn read(body: &[u8], offset: u64, encver: u32) -> Result<Self> {
        if encver != 0 {
            return Err(unknown_encver(offset, TOPK_TYPE, encver, "version 0"));
        }
        let mut o = Ops::new(body, offset, TOPK_TYPE);
        let k = o.uint("k")?;
        let width = o.uint("the width")?;
        let depth = o.uint("the depth")?;
        let decay = o.double("the decay")?;
        let at = o.offset();
        let bytes = o.raw_string("the counters")?.len();
        if Some(bytes)
            != width
                .checked_mul(depth)
                .and_then(|n| n.checked_mul(TOPK_BUCKET))
        {
            return Err(Ops::new(&[], at, TOPK_TYPE)
                .invalid(format!("{width} × {depth} buckets in {bytes} bytes")));
        }
        let at = o.offset();
        let heap = o.string("the heap")?;
        if Some(heap.len() as u64) != k.checked_mul(HEAP_BUCKET) {
            return Err(Ops::new(&[], at, TOPK_TYPE)
                .invalid(format!("a heap of {k} in {} bytes", heap.len())));
        }
        let mut list = Vec::new();
        for bucket in heap.chunks_exact(HEAP_BUCKET as usize) {
            let at = o.offset();
            let item = o.string("a heap item")?;
            let Some((0, text)) = item.split_last() else {
                return Err(
                    Ops::new(&[], at, TOPK_TYPE).invalid("a heap item without its terminating NUL")
                );
            };
            let count = u32::from_le_bytes([bucket[16], bucket[17], bucket[18], bucket[19]]);
            if !text.is_empty() {
                list.push((text.to_vec(), u64::from(count)));
            }
        }
        o.end()?;
        list.sort_by_key(|e| std::cmp::Reverse(e.1));
        Ok(TopK {
            k,
            width,
            depth,
            decay,
            list,
        })
    }

    /// `TopKMemUsage`.
    pub fn mem_usage(&self) -> u64 {
        TOPK + self.width * self.depth * TOPK_BUCKET + self.k * HEAP_BUCKET // both checked on read
    }

    /// The parameters as JSON (items as `export` writes bytes: text when UTF-8, else base64).
    pub fn params(&self) -> serde_json::Value {
        let list: Vec<serde_json::Value> = self
            .list
            .iter()
            .map(|(item, count)| json!([crate::text::bytes_json(item), count]))
            .collect();
        json!({
            "k": self.k,
            "width": self.width,
            "depth": self.depth,
            "decay": self.decay,
            "list": list,
        })
    }
}

/// A t-digest (`TDIGEST.CREATE`).
#[derive(Debug, Clone, PartialEq)]
pub struct TDigest {
    /// Compression.
    pub compression: f64,
    /// Centroid capacity.
    pub capacity: i64,
    /// Merged centroids.
    pub merged_nodes: i64,
    /// Unmerged centroids.
    pub unmerged_nodes: i64,
    /// Merged weight.
    pub merged_weight: f64,
    /// Unmerged weight.
    pub unmerged_weight: f64,
    /// Compressions so far.
    pub total_compressions: i64,
    /// Smallest and largest value observed.
    pub min: f64,
    /// Largest value observed.
    pub max: f64,
}

impl TDigest {
    /// Reads a `TDIS-TYPE` value.
    pub fn read(body: &[u8], offset: u64, encver: u32) -> Result<Self> {
        if encver != 0 {
            return Err(unknown_encver(offset, TDIGEST_TYPE, encver, "version 0"));
        }
        let mut o = Ops::new(body, offset, TDIGEST_TYPE);
        let compression = o.double("the compression")?;
        let min = o.double("the minimum")?;
        let max = o.double("the maximum")?;
        let capacity = o.sint("the capacity")?;
        let merged_nodes = o.sint("the merged nodes")?;
        let unmerged_nodes = o.sint("the unmerged nodes")?;
        let total_compressions = o.sint("the total compressions")?;
        let merged_weight = o.double("the merged weight")?;
        let unmerged_weight = o.double("the unmerged weight")?;
        if merged_nodes < 0 || merged_nodes > capacity {
            return Err(o.invalid(format!(
                "{merged_nodes} merged nodes for a capacity of {capacity}"
            )));
        }
        for _ in 0..merged_nodes {
            o.double("a centroid mean")?;
        }
        for _ in 0..merged_nodes {
            o.double("a centroid weight")?;
        }
        o.end()?;
        Ok(TDigest {
            compression,
            capacity,
            merged_nodes,
            unmerged_nodes,
            merged_weight,
            unmerged_weight,
            total_compressions,
            min,
            max,
        })
    }

    /// `TDigestMemUsage` (`TDIGEST.INFO` Memory usage).
    pub fn mem_usage(&self) -> u64 {
        8u64.saturating_add((self.capacity.max(0) as u64).saturating_mul(16))
    }

    /// The parameters as JSON.
    pub fn params(&self) -> serde_json::Value {
        json!({
            "compression": self.compression,
            "capacity": self.capacity,
            "merged_nodes": self.merged_nodes,
            "unmerged_nodes": self.unmerged_nodes,
            "merged_weight": self.merged_weight,
            "unmerged_weight": self.unmerged_weight,
            "observations": self.merged_weight + self.unmerged_weight,
            "total_compressions": self.total_compressions,
            "min": self.min,
            "max": self.max,
        })
    }
}
