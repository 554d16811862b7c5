//! Aligned plain-text tables: a header, a rule, rows; numbers right-aligned.

/// Prints `rows` under `header`, indented by three spaces, columns two spaces apart.
pub fn print(header: &[&str], rows: &[Vec<String>]) {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        assert_eq!(
            row.len(),
            columns,
            "a row of {} cells under {columns} headers",
            row.len()
        );
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    // A column whose cells are all numbers is right-aligned, header included.
    let numeric: Vec<bool> = (0..columns)
        .map(|c| !rows.is_empty() && rows.iter().all(|row| row[c].parse::<u64>().is_ok()))
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if numeric[c] {
                    format!("{cell:>width$}", width = widths[c])
                } else {
                    format!("{cell:<width$}", width = widths[c])
                }
            })
            .collect();
        println!("   {}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(rule.iter().map(String::as_str).collect());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
