//! `rdbkit filter` and `rdbkit split`: new dumps holding a selection of the keys, each record
//! copied byte for byte (TTL, LRU/LFU, value encoding), with the input's RDB version, aux fields,
//! function libraries, Lua scripts and module aux data, and a fresh CRC64.
//!
//! `split` sends each key to the shard serving its hash slot (`--cluster-slots N` for N equal
//! ranges, or a `nodes.conf` / `CLUSTER NODES` listing for the primaries' ranges), one dump per
//! shard, to seed a cluster offline.
//!
//! The dump is [`rdbkit::write::DumpBuilder`]; this selects and routes the keys.

use super::report::SizeArgs;
use super::{heading, FilterArgs, InputArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use rdbkit::cluster::{equal_shards, key_hash_slot, parse_nodes, Shard, SlotMap};
use rdbkit::filter::Filter;
use rdbkit::model::Entry;
use rdbkit::output::report::{key_record, memory::Limits};
use rdbkit::source::Input;
use rdbkit::text::escape_bytes;
use rdbkit::write::{copy_record, DumpBuilder};
use rdbkit::Item;
use std::path::PathBuf;

/// Arguments of `rdbkit filter`.
#[derive(Debug, Args)]
pub struct FilterCmdArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    dups: super::DuplicateArgs,
    #[command(flatten)]
    size: SizeArgs,
    /// The dump to write.
    #[arg(short, long, value_name = "OUT.rdb", help_heading = heading::OUTPUT)]
    output: PathBuf,
}

/// Arguments of `rdbkit split`.
#[derive(Debug, Args)]
pub struct SplitArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    dups: super::DuplicateArgs,
    #[command(flatten)]
    size: SizeArgs,
    /// `N` shards with equal contiguous slot ranges, or a `nodes.conf` / `CLUSTER NODES` file
    /// (one shard per primary, with its slot ranges).
    #[arg(long = "cluster-slots", value_name = "nodes.conf|N", help_heading = heading::OUTPUT)]
    cluster_slots: String,
    /// Directory for the dumps (`shard-0.rdb`, `shard-1.rdb`, …); created if missing.
    #[arg(short, long, value_name = "DIR", help_heading = heading::OUTPUT)]
    output: PathBuf,
}

/// Decodes `input`, sending each selected key to `route(entry)` (a dump index, or an error).
fn rewrite(
    input: &InputArgs,
    filter: &Filter,
    min_size: Option<u64>,
    ndumps: usize,
    mut route: impl FnMut(&Entry<'_>) -> Result<usize>,
) -> Result<(Vec<DumpBuilder>, u64)> {
    let src =
        Input::open(&input.file).with_context(|| format!("opening {}", input.file.display()))?;
    let mut dumps: Vec<DumpBuilder> = Vec::new();
    let mut total = 0u64;
    let limits = Limits::default();
    let mut scratch = Vec::new();
    src.decode(!input.no_checksum, |item, _| -> Result<()> {
        if let Item::Header { magic, version } = item {
            dumps = (0..ndumps)
                .map(|_| DumpBuilder::new(magic, version))
                .collect();
            return Ok(());
        }
        if copy_record(&item, &mut dumps) {
            return Ok(());
        }
        if let Item::Entry(e) = item {
            total += 1;
            if !filter.matches(&e) {
                return Ok(());
            }
            if let Some(min) = min_size {
                if key_record(&e, &limits, &mut scratch)?.memory < min {
                    return Ok(());
                }
            }
            let i = route(&e)?;
            dumps[i].key(&e);
        }
        Ok(())
    })
    .with_context(|| input.file.display().to_string())?;
    if dumps.is_empty() {
        bail!("{}: no RDB header", input.file.display());
    }
    Ok((dumps, total))
}

/// Runs `filter`.
pub fn run_filter(a: &FilterCmdArgs) -> Result<()> {
    let filter = a.filter.to_filter_for(&a.input.file, &a.dups)?;
    let (mut dumps, total) = rewrite(&a.input, &filter, a.size.min_size, 1, |_| Ok(0))?;
    let out = dumps.remove(0);
    let keys = out.keys();
    let dump = out.finish();
    std::fs::write(&a.output, &dump).with_context(|| format!("writing {}", a.output.display()))?;
    eprintln!(
        "kept {keys} of {total} keys: {} ({} bytes)",
        a.output.display(),
        dump.len()
    );
    Ok(())
}

/// The shards named by `--cluster-slots`.
fn shards(spec: &str) -> Result<Vec<Shard>> {
    if let Ok(n) = spec.parse::<u32>() {
        if n == 0 || n > u32::from(rdbkit::cluster::SLOTS) {
            bail!("--cluster-slots {n}: between 1 and 16384 shards");
        }
        return Ok(equal_shards(n as u16));
    }
    let text =
        std::fs::read_to_string(spec).with_context(|| format!("reading nodes file {spec}"))?;
    parse_nodes(&text).map_err(|e| anyhow::anyhow!("{spec}: {e}"))
}

/// Runs `split`.
pub fn run_split(a: &SplitArgs) -> Result<()> {
    let shards = shards(&a.cluster_slots)?;
    let map = SlotMap::new(&shards).map_err(|e| anyhow::anyhow!("{}: {e}", a.cluster_slots))?;
    let filter = a.filter.to_filter_for(&a.input.file, &a.dups)?;
    let (dumps, total) = rewrite(&a.input, &filter, a.size.min_size, shards.len(), |e| {
        if e.db != 0 {
            bail!(
                "key {} is in db {}, but a cluster has only db 0 (select it with --db 0)",
                escape_bytes(&e.key),
                e.db
            );
        }
        let slot = key_hash_slot(&e.key);
        map.owner(slot).ok_or_else(|| {
            anyhow::anyhow!(
                "slot {slot} of key {} is served by no primary in {}",
                escape_bytes(&e.key),
                a.cluster_slots
            )
        })
    })?;
    std::fs::create_dir_all(&a.output)
        .with_context(|| format!("creating {}", a.output.display()))?;
    let mut kept = 0;
    for (i, (dump, shard)) in dumps.into_iter().zip(&shards).enumerate() {
        let keys = dump.keys();
        kept += keys;
        let path = a.output.join(format!("shard-{i}.rdb"));
        std::fs::write(&path, dump.finish())
            .with_context(|| format!("writing {}", path.display()))?;
        let ranges: Vec<String> = shard
            .ranges
            .iter()
            .map(|(x, y)| {
                if x == y {
                    x.to_string()
                } else {
                    format!("{x}-{y}")
                }
            })
            .collect();
        println!(
            "{}\t{}\tslots {}\t{}{}",
            path.display(),
            rdbkit::output::count(keys, "key"),
            ranges.join(","),
            shard.name,
            shard
                .addr
                .as_deref()
                .map(|s| format!(" {s}"))
                .unwrap_or_default()
        );
    }
    eprintln!("split {kept} of {total} keys into {} dumps", shards.len());
    Ok(())
}
