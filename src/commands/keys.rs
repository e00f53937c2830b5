//! Where a command's keys are: the key specifications servers publish (`COMMAND INFO`), read
//! the way the server reads them (Redis's `getKeysUsingKeySpecs`), from a table generated from
//! Redis 8.2 with RedisJSON, RedisBloom and RediSearch loaded, and Valkey 8.1
//! (`keyspecs.rs`, by `examples/gen_keyspecs.rs`).
//!
//! A command stream (a live source's writes, an AOF) is filtered by key, renamed, routed to a
//! cluster's slots and checked for keys the target held; all of it needs every key of every
//! command, exactly: `ZUNIONSTORE dst 2 a b` names three keys, `SORT src STORE dst` two. A
//! command the table does not know, or whose keys its specs cannot place, is [`None`]: the caller
//! reports it rather than guess.

// `SPECS`: the generated table, part of this module (it names the types below)
include!("keyspecs.rs");

/// Where a key spec starts looking (`begin_search`).
#[derive(Debug, Clone, Copy)]
enum Begin {
    /// At this argument index.
    Index(i64),
    /// After this keyword, searched from `startfrom` (negative: backwards from the end).
    Keyword(&'static str, i64),
    /// Not expressible as a spec (the server uses code of its own).
    Unknown,
}

/// How a key spec finds its keys from where it starts (`find_keys`).
#[derive(Debug, Clone, Copy)]
enum Find {
    /// Keys up to `last` (negative: from the end), every `step`; with `limit`, a part of the rest.
    Range { last: i64, step: i64, limit: i64 },
    /// The number of keys at `index`, the keys from `first` after it, every `step`.
    Keynum { index: i64, first: i64, step: i64 },
    /// Not expressible as a spec.
    Unknown,
}

/// One key specification.
#[derive(Debug, Clone, Copy)]
struct Spec {
    begin: Begin,
    find: Find,
    /// The argument is not a key, though it looks like one (it names no data of the database).
    not_key: bool,
    /// The spec may miss keys: the server finds them by code of its own ([`by_code`]).
    incomplete: bool,
}

/// The specs of command `args[0]` (its subcommand's when it has subcommands).
fn specs<A: AsRef<[u8]>>(args: &[A]) -> Option<&'static [Spec]> {
    let find = |name: &str| {
        SPECS
            .binary_search_by(|(n, _, _)| (*n).cmp(name))
            .ok()
            .map(|i| SPECS[i].2)
    };
    let name = std::str::from_utf8(args.first()?.as_ref())
        .ok()?
        .to_ascii_lowercase();
    if let Some(sub) = args
        .get(1)
        .and_then(|s| std::str::from_utf8(s.as_ref()).ok())
    {
        if let Some(s) = find(&format!("{name}|{}", sub.to_ascii_lowercase())) {
            return Some(s);
        }
    }
    find(&name)
}

/// The indexes in `args` (`args[0]` the command's name) of the keys the command names, in
/// argument order (the keys `COMMAND GETKEYS` lists); `Some(vec![])` for a command on no key
/// (`FLUSHALL`, `PING`). `None` when the command is unknown, its specs cannot place its keys, or
/// its arguments do not fit them (a number of keys that is not a number).
///
/// ```
/// use rdbkit::commands::keys::key_positions;
/// let args = |s: &'static str| s.split(' ').collect::<Vec<_>>();
/// assert_eq!(key_positions(&args("SET k v EX 10")), Some(vec![1]));
/// assert_eq!(key_positions(&args("ZUNIONSTORE dst 2 a b WEIGHTS 1 2")), Some(vec![1, 3, 4]));
/// assert_eq!(key_positions(&args("SORT src BY w:* GET h:* STORE dst")), Some(vec![1, 7]));
/// assert_eq!(key_positions(&args("XGROUP CREATE s g $")), Some(vec![2]));
/// assert_eq!(key_positions(&args("FLUSHALL")), Some(vec![]));
/// assert_eq!(key_positions(&args("NOSUCHCOMMAND k")), None);
/// ```
pub fn key_positions<A: AsRef<[u8]>>(args: &[A]) -> Option<Vec<usize>> {
    let specs = specs(args)?;
    let argc = args.len() as i64;
    let mut out = Vec::new();
    let by_spec = |s: &&Spec| {
        !s.incomplete && !matches!(s.begin, Begin::Unknown) && !matches!(s.find, Find::Unknown)
    };
    if !specs.iter().all(|s| by_spec(&s)) {
        out.extend(by_code(args)?);
    }
    for spec in specs.iter().filter(|s| !s.not_key).filter(by_spec) {
        let first = match spec.begin {
            Begin::Index(i) => i,
            Begin::Keyword(word, from) => {
                let found = if from > 0 {
                    (from..argc).find(|&i| is(args, i, word))
                } else {
                    (1..=argc + from).rev().find(|&i| is(args, i, word))
                };
                match found {
                    Some(i) => i + 1,
                    // an optional keyword left out: no keys from this spec
                    None => continue,
                }
            }
            Begin::Unknown => continue,
        };
        let (first, last, step) = match spec.find {
            Find::Range { last, step, limit } => {
                let end = if last >= 0 {
                    first + last
                } else if limit <= 1 {
                    argc + last
                } else {
                    first + ((argc - first) / limit + last)
                };
                (first, end, step)
            }
            Find::Keynum {
                index,
                first: from,
                step,
            } => {
                let n: i64 =
                    std::str::from_utf8(args.get(usize::try_from(first + index).ok()?)?.as_ref())
                        .ok()?
                        .parse()
                        .ok()
                        .filter(|&n| n >= 0)?;
                if n == 0 {
                    continue;
                }
                let first = first + from;
                (first, first + (n - 1) * step.max(1), step)
            }
            Find::Unknown => continue,
        };
        if first >= argc || last >= argc || last < first || step < 1 {
            return None;
        }
        out.extend((first..=last).step_by(step as usize).map(|i| i as usize));
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// True when `args[i]` is `word` (any case).
fn is<A: AsRef<[u8]>>(args: &[A], i: i64, word: &str) -> bool {
    usize::try_from(i)
        .ok()
        .and_then(|i| args.get(i))
        .is_some_and(|a| a.as_ref().eq_ignore_ascii_case(word.as_bytes()))
}

/// The keys of the specs a server finds by code of its own: `SORT … STORE dst` (the server's
/// `sortGetKeys`: `LIMIT` takes two arguments, `GET` and `BY` one, the last `STORE` counts).
/// `None` for the others (`MIGRATE … KEYS`: a source replicates a `MIGRATE` as `DEL`).
fn by_code<A: AsRef<[u8]>>(args: &[A]) -> Option<Vec<usize>> {
    let name = args.first()?.as_ref();
    if !name.eq_ignore_ascii_case(b"SORT") && !name.eq_ignore_ascii_case(b"SORT_RO") {
        return None;
    }
    let mut store = None;
    let mut i = 2;
    while i < args.len() {
        let a = args[i].as_ref();
        let skip = if a.eq_ignore_ascii_case(b"LIMIT") {
            2
        } else if a.eq_ignore_ascii_case(b"GET") || a.eq_ignore_ascii_case(b"BY") {
            1
        } else if a.eq_ignore_ascii_case(b"STORE") && i + 1 < args.len() {
            store = Some(i + 1);
            1
        } else {
            0
        };
        i += 1 + skip;
    }
    Some(store.into_iter().collect())
}
