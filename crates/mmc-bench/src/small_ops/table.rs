//! What `small-ops` reports from its passes: the markdown table and the
//! JSON document. With one pass, each figure is that pass's; with several,
//! each figure is the median over the passes, and each ratio the median of
//! the ratios taken within a pass (a client and the baseline it is divided
//! by come from the same pass, so the machine's drift between passes
//! cancels), with the lowest and highest.

use super::{Figures, Rounds};

/// One column of the table: a client and its figures (or why it was skipped).
pub(super) struct Column {
    pub label: &'static str,
    pub figures: Result<Figures, String>,
}

/// One pass of the whole sequence: the in-process baseline and each client.
pub(super) struct Pass {
    pub inproc: Figures,
    pub columns: Vec<Column>,
}

/// Picks one operation's figure.
type Pick = fn(&Figures) -> f64;

/// The operations: their row name, JSON key and figure.
const OPS: [(&str, &str, Pick); 4] = [
    ("exist, 1 key", "exist1_us", |f| f.exist1_us),
    ("get_into, 1 x 4 KiB", "get1_us", |f| f.get1_us),
    ("exist, 32 keys", "exist32_us", |f| f.exist32_us),
    ("get_into, 32 x 4 KiB", "get32_us", |f| f.get32_us),
];

/// The median of `v` (not empty): the mean of the two middle values of an
/// even count.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n % 2 {
        1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Each operation's median over `figures`.
fn medians<'a>(figures: impl Iterator<Item = &'a Figures> + Clone) -> Figures {
    let m = |pick: Pick| median(figures.clone().map(pick).collect());
    Figures {
        exist1_us: m(|f| f.exist1_us),
        get1_us: m(|f| f.get1_us),
        exist32_us: m(|f| f.exist32_us),
        get32_us: m(|f| f.get32_us),
    }
}

/// Column `c`'s figures in every pass where it ran, with that pass's
/// baseline.
fn runs(passes: &[Pass], c: usize) -> Vec<(&Figures, &Figures)> {
    passes
        .iter()
        .filter_map(|p| Some((p.columns.get(c)?.figures.as_ref().ok()?, &p.inproc)))
        .collect()
}

/// The ratios of one operation of column `c` to the baseline, one per pass.
fn ratios(passes: &[Pass], c: usize, pick: Pick) -> Vec<f64> {
    runs(passes, c).iter().map(|(f, base)| pick(f) / pick(base)).collect()
}

/// The markdown table: one line per operation, the in-process figure, then
/// each client process's figure and its ratio to the in-process one.
pub(super) fn render(passes: &[Pass], r: Rounds) -> String {
    let Some(first) = passes.first() else {
        return String::new();
    };
    let several = passes.len() > 1;
    let mut s = match several {
        false => format!(
            "Small operations, us per call (median of {} rounds of {} s); ratio = separate process / in process\n\n",
            r.rounds, r.round_s
        ),
        true => format!(
            "Small operations, us per call (median of {} rounds of {} s, then median of {} passes); \
             ratio = separate process / in process within a pass, median of the passes (lowest-highest)\n\n",
            r.rounds,
            r.round_s,
            passes.len()
        ),
    };
    s += "| operation | in process (Rust) |";
    for c in &first.columns {
        s += &format!(" {} process | ratio |", c.label);
    }
    s += "\n|---|---:|";
    s += &"---:|---:|".repeat(first.columns.len());
    s += "\n";
    for (name, _, pick) in OPS {
        s += &format!(
            "| {name} | {:.2} |",
            median(passes.iter().map(|p| pick(&p.inproc)).collect())
        );
        for c in 0..first.columns.len() {
            let figs: Vec<f64> = runs(passes, c).iter().map(|(f, _)| pick(f)).collect();
            if figs.is_empty() {
                s += " - | - |";
                continue;
            }
            let rs = ratios(passes, c, pick);
            let (lo, hi) = rs
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            s += &format!(" {:.2} | {:.2}x", median(figs), median(rs));
            if several {
                s += &format!(" ({lo:.2}-{hi:.2})");
            }
            s += " |";
        }
        s += "\n";
    }
    for c in &first.columns {
        if let Err(e) = &c.figures {
            s += &format!("\n{} client: {e}", c.label);
        }
    }
    s
}

/// The JSON document: `in_process_rust` and `process_<client>` hold the
/// (median) figures, or `{"skipped": why}`; with several passes also
/// `median_ratios` (per client and operation) and every pass's figures in
/// `passes`.
pub(super) fn json(passes: &[Pass]) -> serde_json::Value {
    let one = |inproc: Figures, cols: Vec<(&str, Result<Figures, &String>)>| {
        let mut obj = serde_json::Map::new();
        obj.insert("in_process_rust".into(), serde_json::json!(inproc));
        for (label, f) in cols {
            let v = match f {
                Ok(f) => serde_json::json!(f),
                Err(e) => serde_json::json!({ "skipped": e }),
            };
            obj.insert(format!("process_{}", label.to_lowercase()), v);
        }
        obj
    };
    let Some(first) = passes.first() else {
        return serde_json::json!({});
    };
    let cols = (0..first.columns.len())
        .map(|c| {
            let figs = runs(passes, c);
            let f = match figs.is_empty() {
                true => first.columns[c].figures.as_ref().map(|f| *f),
                false => Ok(medians(figs.iter().map(|(f, _)| *f))),
            };
            (first.columns[c].label, f)
        })
        .collect();
    let mut doc = one(medians(passes.iter().map(|p| &p.inproc)), cols);
    if passes.len() > 1 {
        let mut ratio_doc = serde_json::Map::new();
        for (c, col) in first.columns.iter().enumerate() {
            let mut per_op = serde_json::Map::new();
            for (_, key, pick) in OPS {
                let rs = ratios(passes, c, pick);
                if !rs.is_empty() {
                    per_op.insert(key.into(), serde_json::json!(median(rs)));
                }
            }
            ratio_doc.insert(format!("process_{}", col.label.to_lowercase()), per_op.into());
        }
        doc.insert("median_ratios".into(), ratio_doc.into());
        let each = passes
            .iter()
            .map(|p| {
                let cols = p
                    .columns
                    .iter()
                    .map(|c| (c.label, c.figures.as_ref().map(|f| *f)))
                    .collect();
                serde_json::Value::from(one(p.inproc, cols))
            })
            .collect::<Vec<_>>();
        doc.insert("passes".into(), each.into());
    }
    doc.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Figures = Figures {
        exist1_us: 2.0,
        get1_us: 4.0,
        exist32_us: 5.0,
        get32_us: 20.0,
    };
    const ROUNDS: Rounds = Rounds {
        round_s: 0.3,
        rounds: 5,
    };

    fn pass(base: Figures, rust: Figures) -> Pass {
        Pass {
            inproc: base,
            columns: vec![
                Column {
                    label: "Rust",
                    figures: Ok(rust),
                },
                Column {
                    label: "C",
                    figures: Err("skipped: no cc".into()),
                },
            ],
        }
    }

    #[test]
    fn the_table_shows_ratios_and_skipped_clients() {
        let t = render(&[pass(BASE, Figures { exist1_us: 3.0, ..BASE })], ROUNDS);
        assert!(t.contains("| exist, 1 key | 2.00 | 3.00 | 1.50x | - | - |"), "{t}");
        assert!(
            t.contains("| get_into, 32 x 4 KiB | 20.00 | 20.00 | 1.00x | - | - |"),
            "{t}"
        );
        assert!(t.contains("C client: skipped: no cc"), "{t}");
        let doc = json(&[pass(BASE, Figures { exist1_us: 3.0, ..BASE })]);
        assert_eq!(doc["process_rust"]["exist1_us"], 3.0);
        assert_eq!(doc["process_c"]["skipped"], "skipped: no cc");
        assert!(doc.get("passes").is_none(), "{doc}");
    }

    #[test]
    fn over_several_passes_each_ratio_is_taken_within_its_pass() {
        // The machine slows down by half in the second pass and speeds up in
        // the third: the client is 1.5x its own pass's baseline each time,
        // while its figures against the median baseline would say otherwise.
        let slow = |k: f64| Figures {
            exist1_us: 2.0 * k,
            get1_us: 4.0 * k,
            exist32_us: 5.0 * k,
            get32_us: 20.0 * k,
        };
        let passes: Vec<Pass> = [1.0, 1.5, 0.8]
            .iter()
            .map(|&k| {
                pass(
                    slow(k),
                    Figures {
                        exist1_us: 3.0 * k,
                        ..slow(k)
                    },
                )
            })
            .collect();
        let t = render(&passes, ROUNDS);
        assert!(t.contains("median of 3 passes"), "{t}");
        assert!(
            t.contains("| exist, 1 key | 2.00 | 3.00 | 1.50x (1.50-1.50) | - | - |"),
            "{t}"
        );
        let doc = json(&passes);
        assert_eq!(doc["median_ratios"]["process_rust"]["exist1_us"], 1.5);
        assert_eq!(doc["median_ratios"]["process_rust"]["get32_us"], 1.0);
        assert_eq!(doc["passes"].as_array().map(Vec::len), Some(3));
        assert_eq!(doc["passes"][1]["process_rust"]["exist1_us"], 4.5);
        assert_eq!(doc["in_process_rust"]["exist1_us"], 2.0);
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    }
}
