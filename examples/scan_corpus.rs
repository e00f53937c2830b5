//! Decodes every file given on the command line fully and prints one line per file.
use rdbkit::{Decoder, Item};
fn main() {
    for p in std::env::args().skip(1) {
        let data = std::fs::read(&p).unwrap();
        let mut keys = 0u64;
        let mut res = Ok(());
        for item in Decoder::new(&data) {
            match item {
                Ok(Item::Entry(e)) => {
                    keys += 1;
                    if let Err(err) = e.value() {
                        res = Err(err);
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    res = Err(e);
                    break;
                }
            }
        }
        match res {
            Ok(()) => println!("OK\t{keys}\t{p}"),
            Err(e) => println!("ERR\t{keys}\t{p}\t{e}"),
        }
    }
}
